"""FineMedLM-o1 end to end against the loopback server (malformed answers, 429s and timeouts included)."""

from medreason.synth.prompts import TEMPLATE_DIR

from .conftest import finemed_texts, read_jsonl, run_synth, write_jsonl


def test_finemed_end_to_end_and_rerun_makes_no_calls(fake_llm, tmp_path):
    server, llm = fake_llm
    source = write_jsonl(tmp_path / "texts.jsonl", finemed_texts())
    out = tmp_path / "out"
    report = run_synth(server, "finemed", source, out, "roles.complex.model=qwq")

    counts = report["counts"]
    assert counts["texts"] == 6 and counts["texts_with_questions"] == 5  # t5 never parses
    assert counts["questions_scored"] == 8  # t6's two questions get out-of-range scores
    assert counts["dropped_both_mention_details"] == 1 and counts["dropped_unscored"] == 1
    assert (counts["common"], counts["complex"]) == (2, 1)

    # Algorithm 1's choices, worked by hand in conftest.finemed_texts
    sft = read_jsonl(out / "sft.jsonl")
    assert [r["id"] for r in sft] == ["t2#2", "t4#2"]
    assert all(r["department"] == "Internal Medicine" and r["subdepartment"] == "Endocrinology" for r in sft)
    assert all(r["response"] and r["instruction"] for r in sft)
    (long_form,) = read_jsonl(out / "sft_long_form.jsonl")
    assert long_form["id"] == "t1#1" and long_form["complexity"] == 9
    assert long_form["cot"] == "Let me weigh the findings step by step."
    (pair,) = read_jsonl(out / "dpo.jsonl")
    assert set(pair) == {"id", "prompt", "chosen", "rejected"}
    assert (
        pair["chosen"].startswith("<think>\nLet me weigh")
        and pair["rejected"] == "A brief answer about thyroid care."
    )

    # the complex role went to its own model; every other role to the default one
    long_form_bodies = [
        b for b in server.requests if b["messages"][0]["content"].startswith("Work out a careful")
    ]
    assert long_form_bodies and {b["model"] for b in long_form_bodies} == {"qwq"}
    assert {b["model"] for b in server.requests} == {"qwen", "qwq"}

    failures = read_jsonl(out / "failures.jsonl")
    assert sorted((f["stage"], f["id"], f["kind"]) for f in failures) == [
        ("instructions", "t5", "parse"),
        ("score", "t6#1", "parse"),
        ("score", "t6#2", "parse"),
    ]
    assert "'quality' must be from 1 to 10, got 11" in failures[-1]["error"] and failures[-1]["attempts"] == 3
    assert (out / "histograms.png").stat().st_size > 0 and (out / "manifest.json").is_file()
    assert report["steps"]["instructions"]["parse_retries"] >= 1  # MALFORMED answered garbage at seed 0

    # the 429 and the hung request were retried by the engine: two requests for one call each
    def asked(marker):
        return [
            b
            for b in server.requests
            if b["messages"][0]["content"].startswith("Read the medical")
            and marker in b["messages"][0]["content"]
        ]

    assert len(asked("RATE_LIMIT")) == 2
    # seed 0: hung (timeout) then garbage; seed 1 (the parse retry, a new call): hung then a good answer
    assert len(asked("SLOW")) == 4
    requests = len(server.requests)
    again = run_synth(server, "finemed", source, out, "roles.complex.model=qwq")
    assert len(server.requests) == requests  # nothing asked twice
    assert again["counts"] == counts and read_jsonl(out / "sft.jsonl") == sft


def test_custom_template_and_reward_model_from_config(fake_llm, tmp_path, tiny_model_dir):
    server, _ = fake_llm
    source = write_jsonl(tmp_path / "texts.jsonl", finemed_texts()[:2])
    custom = tmp_path / "score.j2"
    custom.write_text((TEMPLATE_DIR / "finemed_score.j2").read_text() + "\nBe strict.")
    out = tmp_path / "out"
    report = run_synth(
        server,
        "finemed",
        source,
        out,
        f"settings.templates.score={custom}",
        f"settings.reward_model={tiny_model_dir}",
        "settings.classify=false",
    )
    assert all(
        b["messages"][0]["content"].endswith("Be strict.")
        for b in server.requests
        if b["messages"][0]["content"].startswith("You are grading")
    )
    sft = read_jsonl(out / "sft.jsonl")
    assert [r["chosen_by"] for r in sft] in (["reward_model:answer1"], ["reward_model:answer2"])
    assert sft[0]["department"] is None and report["counts"]["classified"] == 0
    assert (out / "cache" / "reward.jsonl").is_file()
