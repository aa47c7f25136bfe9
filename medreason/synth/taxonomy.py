"""FineMed's two-level department taxonomy (FineMedLM-o1, Section 2.2, Appendices C and D).

Five clinical departments plus a catch-all "Other Departments" at the first level, and 29
sub-departments at the second (8 + 10 + 2 + 2 + 3 + 4). The curriculum SFT filters on the names
(``department="Internal Medicine"``, ``subdepartment="Endocrinology"``), so they are spelled as in the
paper. The one-line descriptions are ours; they steer the classifier and can be edited per run
(``departments:`` in ``conf/synth/pipeline/finemed.yaml``).
"""

from __future__ import annotations

__all__ = ["DEPARTMENTS", "PRIMARY_DESCRIPTIONS", "count_subdepartments"]

PRIMARY_DESCRIPTIONS: dict[str, str] = {
    "Internal Medicine": "illnesses of the internal organs managed without operations, e.g. heart, stomach or "
    "metabolic disease such as diabetes",
    "Surgery": "conditions treated by an operation or procedure, e.g. fractures or removal of tumours",
    "Obstetrics and Gynecology": "the female reproductive organs, pregnancy and childbirth",
    "Pediatrics": "health problems and illnesses of children",
    "Otorhinolaryngology (ENT)": "ears, nose and throat, together with the eyes and the mouth",
    "Other Departments": "anything that fits none of the departments above",
}

DEPARTMENTS: dict[str, dict[str, str]] = {
    "Internal Medicine": {
        "Respiratory and Critical Care Medicine": "lung and airway disease (asthma, pneumonia, COPD) and intensive care",
        "Cardiology": "heart and blood-vessel disease such as hypertension, coronary disease and arrhythmia",
        "Endocrinology": "hormone-producing glands and metabolism: diabetes, thyroid and metabolic disorders",
        "Gastroenterology": "the digestive tract and liver, e.g. ulcers, hepatitis, enteritis",
        "Hematology": "blood and blood-forming tissue: anaemia, leukaemia, lymphoma",
        "Nephrology": "the kidneys, e.g. nephritis, kidney failure, uraemia",
        "Rheumatology and Immunology": "rheumatic and immune disorders such as rheumatoid arthritis or lupus",
        "Neurology": "the nervous system treated medically: stroke, epilepsy, Parkinson's disease",
    },
    "Surgery": {
        "Gastrointestinal Surgery": "operations on the stomach and bowel, e.g. gastric cancer, bowel obstruction",
        "Hepatobiliary Surgery": "operations on the liver, gallbladder and pancreas",
        "Urology": "surgery of the urinary tract and prostate, e.g. stones, bladder tumours, prostate enlargement",
        "Cardiovascular Surgery": "operations on the heart and great vessels, e.g. valve disease, aortic aneurysm",
        "Thoracic Surgery": "operations on chest organs such as the lungs and oesophagus",
        "Orthopedic Surgery": "bones, joints and spine: fractures, arthritis needing surgery, disc herniation",
        "Neurosurgery": "operations on the brain, spine and nerves, e.g. brain tumours, haemorrhage, stenosis",
        "Burns and Plastic Surgery": "burn care, scar repair and reconstructive or cosmetic surgery",
        "Thyroid Surgery": "operations on the thyroid and nearby glands, e.g. nodules and tumours",
        "Breast Surgery": "surgical care of breast disease, e.g. hyperplasia and breast cancer",
    },
    "Obstetrics and Gynecology": {
        "Gynecology": "the female reproductive system outside pregnancy: menstrual problems, infertility, uterine disease",
        "Obstetrics": "pregnancy, delivery and care after birth",
    },
    "Pediatrics": {
        "Pediatric Internal Medicine": "medical illness in children, e.g. colds, asthma, digestive or hormone problems",
        "Pediatric Surgery": "surgical problems in children, e.g. injuries, birth defects, hernias",
    },
    "Otorhinolaryngology (ENT)": {
        "Otorhinolaryngology (ENT)": "ear, nose and throat complaints such as tinnitus, blocked nose, sore throat",
        "Ophthalmology": "the eyes, e.g. blurred vision, eye pain, dry eye",
        "Dentistry (Oral Medicine)": "teeth, gums and mouth, e.g. toothache, ulcers, bleeding gums",
    },
    "Other Departments": {
        "Dermatology and Venereology": "skin disease and sexually transmitted infections",
        "Rehabilitation Medicine": "restoring function after injury, illness or surgery, sports injuries",
        "Anesthesiology": "anaesthesia and pain control around operations",
        "Traditional Chinese Medicine (TCM)": "herbal medicine, acupuncture and tui na massage",
    },
}


def count_subdepartments(departments: dict[str, dict[str, str]] = DEPARTMENTS) -> int:
    """How many second-level departments a taxonomy has.

    >>> count_subdepartments()
    29
    """
    return sum(len(children) for children in departments.values())
