"""Write a small "your own data" table: repeated names, free-text patient descriptions (columns ``label,text``).

Unlike the bundled sample (one comma list per disease), each name has many rows, and each row is a sentence or two
in a patient's words, so a split, a metric or a preset that fits only the sample shows here.  Every sentence is
generated from the templates and symptom phrases below (written for this project); the same arguments give the
same file on every machine (NumPy's PCG64 generator).

    python tests/make_table.py --names 21 --rows 50 --out /tmp/T.csv
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np

CONDITIONS = {
    "Psoriasis": ["dry scaly patches on my elbows", "itchy red plaques on my scalp", "cracked skin that bleeds",
                  "thick pitted fingernails", "silvery flakes on my knees"],
    "Varicose Veins": ["bulging blue veins on my calves", "heavy aching legs in the evening", "swollen ankles",
                       "itching around the veins", "cramps in my legs at night"],
    "Typhoid": ["a fever that climbs every evening", "a dull headache that will not go", "stomach pain",
                "a rash of small pink spots", "no appetite at all"],
    "Chicken Pox": ["itchy blisters all over my chest", "a mild fever", "tiredness",
                    "spots that crust over", "a loss of appetite"],
    "Impetigo": ["red sores around my nose", "sores that burst and leave a honey crust", "itching",
                 "swollen glands in my neck", "blisters on my hands"],
    "Dengue": ["a sudden high fever", "severe pain behind my eyes", "aching joints and muscles",
               "a rash on my arms", "nausea and vomiting"],
    "Malaria": ["shaking chills", "fever that comes and goes", "heavy sweating", "a pounding headache",
                "muscle pain"],
    "Common Cold": ["a runny nose", "a scratchy throat", "sneezing", "a mild cough", "watery eyes"],
    "Pneumonia": ["a cough with thick phlegm", "sharp chest pain when I breathe", "a high fever",
                  "shortness of breath", "chills at night"],
    "Arthritis": ["stiff joints in the morning", "swollen knuckles", "pain in my knees when I climb stairs",
                  "warm tender joints", "less movement in my hips"],
    "Migraine": ["a throbbing pain on one side of my head", "flashes of light before the pain",
                 "nausea", "sensitivity to bright light", "trouble sleeping"],
    "Asthma": ["wheezing", "a tight chest", "coughing at night", "shortness of breath when I exercise",
               "breathing that gets worse in cold air"],
    "Jaundice": ["yellow skin", "yellow eyes", "dark urine", "pale stools", "itching all over"],
    "Diabetes": ["constant thirst", "going to the toilet very often", "blurred vision",
                 "cuts that heal slowly", "tiredness after meals"],
    "Hypertension": ["headaches in the morning", "a pounding in my chest", "nosebleeds",
                     "dizziness when I stand up", "ringing in my ears"],
    "Allergy": ["sneezing fits", "an itchy nose", "red watery eyes", "a blocked nose", "a rash after eating"],
    "Gastroenteritis": ["diarrhoea", "stomach cramps", "vomiting", "a mild fever", "feeling very weak"],
    "Urinary Tract Infection": ["a burning feeling when I pass urine", "needing to pass urine often",
                                "cloudy urine", "pain low in my belly", "a strong smell to my urine"],
    "Bronchial Asthma": ["a cough that will not stop", "wheezing at night", "a tight chest",
                         "breathlessness", "thick mucus"],
    "Cervical Spondylosis": ["a stiff neck", "pain that spreads to my shoulders", "numbness in my hands",
                             "headaches at the back of my head", "weak grip"],
    "Peptic Ulcer": ["a burning pain in my stomach", "bloating", "heartburn", "nausea after meals",
                     "feeling full too quickly"],
    "Hypothyroidism": ["feeling cold all the time", "weight gain", "dry skin", "constipation",
                       "a slow tired feeling"],
    "Sinusitis": ["pressure around my eyes", "a blocked nose", "thick yellow mucus", "a reduced sense of smell",
                  "pain in my upper teeth"],
    "Acne": ["spots on my face", "blackheads on my nose", "painful lumps under my skin", "oily skin",
             "scars from old spots"],
}
DURATIONS = ["two days", "three days", "a week", "two weeks", "a month", "several months"]
TEMPLATES = [
    "I have been dealing with {a} for {d}, and lately {b} has started too.",
    "For the past {d} I keep noticing {a}; it gets worse at night and comes with {b}.",
    "My main problem is {a}, which started {d} ago, and I also have {b} and {c}.",
    "Over the last {d} I have had {a} and {b}, so I finally decided to see someone about it.",
    "It began {d} ago with {a}; now there is {b} as well and I feel worn out.",
    "Besides {a}, I have had {b} for {d} and sometimes {c} in the afternoon.",
]


def make_rows(names: int, rows: int, seed: int = 0) -> list[dict[str, str]]:
    """``names`` × ``rows`` rows of ``{"label": name, "text": description}``, grouped by name."""
    if not 1 <= names <= len(CONDITIONS):
        raise ValueError(f"names must be between 1 and {len(CONDITIONS)}, got {names}")
    rng = np.random.default_rng(seed)
    out = []
    for name in list(CONDITIONS)[:names]:
        pool = CONDITIONS[name]
        for _ in range(rows):
            a, b, c = (pool[i] for i in rng.permutation(len(pool))[:3])
            template = TEMPLATES[rng.integers(len(TEMPLATES))]
            duration = DURATIONS[rng.integers(len(DURATIONS))]
            out.append({"label": name, "text": template.format(a=a, b=b, c=c, d=duration)})
    return out


def write_table(path: Path | str, names: int = 12, rows: int = 8, seed: int = 0) -> Path:
    path = Path(path)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=["label", "text"])
        writer.writeheader()
        writer.writerows(make_rows(names, rows, seed))
    return path


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--names", type=int, default=12)
    p.add_argument("--rows", type=int, default=8, help="rows per name")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, required=True)
    a = p.parse_args()
    print(write_table(a.out, a.names, a.rows, a.seed))
