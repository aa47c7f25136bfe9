import pytest

from medreason.eval import (
    SUITES,
    BenchmarkResult,
    EvalRecord,
    EvalResults,
    PromptTemplate,
    mean_and_stderr,
    published_table,
)

II_MEDICAL_HEADER = (
    "| Model | MedMC | MedQA | PubMed | MMLU-P | GPQA | Lancet | MedB-4 | MedB-5 | MedX | NEJM | Avg |"
)


def results_for(suite, accuracy=0.5, num_samples=1, skip=()):
    benchmarks = [
        BenchmarkResult(name, name, accuracy, 0.012, 100, num_samples)
        for name in SUITES[suite]
        if name not in skip
    ]
    return EvalResults("my-model", benchmarks, suite=suite)


def test_ii_medical_table_has_the_model_card_layout_and_published_rows():
    lines = results_for("ii_medical").table().splitlines()
    assert lines[0] == II_MEDICAL_HEADER
    assert lines[1] == "|---|---|---|---|---|---|---|---|---|---|---|---|"
    assert (
        "| II-Medical-8B | 71.57 | 87.82 | 78.20 | 80.46 | 67.18 | 70.38 | 78.25 | 72.07 | 25.26 | 73.13 | 70.49 |"
        in lines
    )
    assert (
        "| II-Medical-7B-Preview | 69.42 | 85.15 | 77.90 | 77.26 | 55.90 | 65.29 | 72.72 | 68.50 | 22.97 | 68.66 | 66.40 |"
        in lines
    )
    assert lines[-1] == "| **my-model** | " + " | ".join(["50.00"] * 11) + " |"
    assert len(lines) == 2 + 10 + 1


def test_reasonmed_table_prints_plus_minus_like_the_card():
    lines = results_for("reasonmed", accuracy=0.669).table().splitlines()
    assert (
        lines[0]
        == "| Model | MedQA | MedMCQA (val) | PubMedQA | Anatomy | CK | C-Bio | C-Med | Med-Gene | P-Med | Total Acc |"
    )
    assert (
        "| ReasonMed-7B | 66.9 ± 1.3 | 65.1 ± 0.7 | 82.0 ± 5.5 | 75.6 ± 3.7 | 79.3 ± 2.5 | 79.2 ± 3.4 | 73.4 ± 3.4 | 85.0 ± 3.6 | 80.9 ± 2.4 | 69.6 |"
        in lines
    )
    assert lines[-1].startswith("| **my-model** | 66.9 ± 1.2 | 66.9 ± 1.2 |")


def test_finemedlm_table_and_options():
    table = results_for("finemedlm", accuracy=0.7071).table(published=False)
    assert table.splitlines() == [
        "| Model | Biology | Health | Average |",
        "|---|---|---|---|",
        "| **my-model** | 70.71 | 70.71 | 70.71 |",
    ]
    assert "± 1.20" in results_for("finemedlm", num_samples=4).table()  # n > 1 shows the standard error


def test_missing_benchmarks_show_a_dash_and_extra_ones_append_columns():
    results = results_for("ii_medical", skip=("lancet", "nejm"))
    results.benchmarks.append(BenchmarkResult("custom", "Custom", 1.0, 0.0, 5, 1))
    header, _, *rows = results.table().splitlines()
    assert header == II_MEDICAL_HEADER.replace("| Avg |", "| Custom | Avg |")
    assert rows[-1].split(" | ")[6] == "–" and rows[-1].split(" | ")[10] == "–"
    assert rows[0].endswith("| 76.29 | – | 71.13 |")  # published rows have no Custom score


@pytest.mark.parametrize("suite", ["ii_medical", "finemedlm"])
def test_published_averages_match_their_rows(suite):
    table = published_table(suite)
    assert len(table.columns) == len(SUITES[suite])
    for row in table.rows:
        assert len(row.scores) == len(table.columns)
        # Copied as printed: the two rows whose printed average disagrees say so in a note.
        mean = sum(row.scores) / len(row.scores)
        assert mean == pytest.approx(row.average, abs=0.15) or f"average to {mean:.2f}" in row.note, row.model


def test_reasonmed_published_rows_carry_standard_errors():
    table = published_table("reasonmed")
    assert table.stderr and all(len(row.stderr) == 9 for row in table.rows)
    assert published_table("unknown") is None


def test_plot_writes_a_png(tmp_path):
    import matplotlib.image

    path = results_for("ii_medical", skip=("lancet",)).plot(tmp_path / "chart.png")
    image = matplotlib.image.imread(path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and image.shape[0] > 100 and image.shape[1] > 100
    ad_hoc = EvalResults(
        "m", [BenchmarkResult("medqa", "MedQA", 0.4, 0.05, 10, 1)], output_dir=str(tmp_path / "out")
    )
    assert ad_hoc.plot() == tmp_path / "out" / "results.png" and ad_hoc.plot().is_file()


def test_plot_shows_ours_against_the_card_models_at_laptop_size(tmp_path):
    import matplotlib.image

    results = results_for("ii_medical", accuracy=0.6)
    labels, series = results.plot_series()
    assert labels[-1] == "Avg" and len(labels) == 11
    assert [name for name, _ in series] == ["my-model", "II-Medical-8B (published)", "II-Medical-7B-Preview (published)"]
    assert series[0][1][0] == pytest.approx(60.0) and series[1][1][0] == 71.57
    height, width = matplotlib.image.imread(results.plot(tmp_path / "chart.png")).shape[:2]
    assert width <= 1000 and height <= 1200  # the old 12-model chart was 5322 x 540
    chosen = results.plot_series(models=["M1"])[1]
    assert [name for name, _ in chosen] == ["my-model", "M1 (published)"]
    with pytest.raises(ValueError, match="GPT-5"):
        results.plot_series(models=["GPT-5"])


def test_plot_draws_other_measured_runs_between_ours_and_the_published(tmp_path):
    with_ttt, without = results_for("finemedlm", accuracy=0.6), results_for("finemedlm", accuracy=0.4)
    without.model = "without TTT"
    names = [name for name, _ in with_ttt.plot_series(also=[without])[1]]
    assert names == ["my-model", "without TTT", "FineMedLM-o1 (published)"]
    assert with_ttt.plot_series(also=[without])[1][1][1][0] == pytest.approx(40.0)
    assert with_ttt.plot(tmp_path / "ttt.png", also=[without]).is_file()
    with pytest.raises(ValueError, match="was evaluated on"):
        with_ttt.plot_series(also=[results_for("ii_medical")])


def test_save_and_load_round_trip(tmp_path):
    results = results_for("finemedlm")
    loaded = EvalResults.load(results.save(tmp_path / "results.json"))
    assert loaded == results and loaded.average == 0.5


def test_mean_and_stderr():
    assert mean_and_stderr([1.0]) == (1.0, 0.0)
    mean, stderr = mean_and_stderr([1, 0] * 50)
    assert mean == 0.5 and stderr == pytest.approx((0.25 * 100 / 99 / 100) ** 0.5)
    with pytest.raises(ValueError):
        mean_and_stderr([])


def test_prompt_template_renders_chat_and_text():
    record = EvalRecord("1", "Which gland?", {"A": "Thyroid", "B": "Adrenal"}, "A")
    (message,) = PromptTemplate()(record)
    assert (
        message["content"]
        == "Which gland?\nA. Thyroid\nB. Adrenal\n\nPlease reason step-by-step, and put your final answer within \\boxed{}."
    )
    assert PromptTemplate(instruction="", chat=False)(record) == "Which gland?\nA. Thyroid\nB. Adrenal"
    with pytest.raises(ValueError, match="system needs chat=True"):
        PromptTemplate(system="x", chat=False)
