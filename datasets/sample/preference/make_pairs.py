#!/usr/bin/env python3
"""Writes the synthetic preference pairs of this folder (run from anywhere):

    python3 datasets/sample/preference/make_pairs.py

Every sentence below was written by hand for this project; the script only
combines them, with a fixed seed, so the files are reproducible. Each pair is
a clinician's question that leaves out something a safe answer needs (vitals,
a lab value, the dose taken, allergies), a preferred answer that asks for it,
and a rejected answer that guesses. Half the pairs are written in Azure AI
Foundry's DPO format (azure-dpo.jsonl), half in TRL's conversational
preference format (trl.jsonl). Some mention a made-up patient by name, date
or phone number, so that de-identification has something to scrub.
"""

import json
import random
from pathlib import Path

SYSTEM = "You are a clinical decision support assistant for nurses and physicians. Never guess missing clinical facts."

# (situation, what is missing, how to ask for it, a guess that ignores it)
CASES = [
    ("a patient on metoprolol feels dizzy this morning", "vital signs",
     "their current blood pressure and heart rate, lying and standing", "a little dizziness is expected; give the next dose as usual"),
    ("a patient with heart failure gained weight this week", "the weight change and symptoms",
     "how many kilograms were gained over how many days, and whether they are short of breath", "some weight gain is normal; no change is needed"),
    ("a diabetic patient feels shaky before lunch", "a glucose reading",
     "a fingerstick glucose now, and when they last ate and took insulin", "it is probably nerves; lunch will fix it"),
    ("a patient on warfarin has a nosebleed", "the latest INR",
     "the most recent INR and how long the bleeding has lasted", "nosebleeds are common; keep the warfarin dose"),
    ("a child with fever seems sleepy", "temperature and hydration",
     "the temperature, the number of wet diapers today, and whether the child can be woken fully", "fever makes children sleepy; give paracetamol and wait"),
    ("a patient after knee surgery has calf pain", "signs of a clot",
     "whether the calf is swollen, warm or red, and their heart rate and oxygen saturation", "calf pain is usual after surgery; walk more"),
    ("a patient on lisinopril has a cough", "the cough's features and blood pressure",
     "how long the cough has lasted, whether there is fever or sputum, and their blood pressure", "it is the lisinopril; stop it today"),
    ("a patient with kidney disease asks for ibuprofen", "kidney function",
     "the latest creatinine and eGFR, and which other medicines they take", "ibuprofen is fine for a few days"),
    ("a patient with asthma is breathless at night", "peak flow and oxygen saturation",
     "their peak flow compared with their best, their oxygen saturation, and inhaler use today", "nighttime breathlessness is anxiety; suggest relaxation"),
    ("an elderly patient is newly confused", "vital signs and glucose",
     "temperature, blood pressure, oxygen saturation, a glucose reading, and any new medicines", "confusion comes with age; reassess next week"),
    ("a patient wants to restart metformin after a CT scan with contrast", "kidney function after the scan",
     "a creatinine measured at least 48 hours after the contrast", "restart metformin tonight at the usual dose"),
    ("a pregnant patient has a headache", "blood pressure and urine protein",
     "her blood pressure now, a urine protein result, and whether she has visual changes", "headaches are common in pregnancy; rest and drink water"),
    ("a patient on digoxin feels nauseated", "a digoxin level and potassium",
     "a digoxin level, potassium, and heart rate", "nausea is a stomach bug; continue digoxin"),
    ("a patient with chest pain says it is better now", "an ECG and troponin",
     "an ECG now, a troponin result, and when the pain started", "pain that settles is not cardiac; discharge home"),
    ("a patient on insulin will fast for a procedure", "the insulin regimen and glucose",
     "their insulin types and doses, the procedure time, and a morning glucose", "skip all insulin until they eat again"),
    ("a patient asks whether they can take amoxicillin", "allergy history",
     "any past reaction to penicillin or other antibiotics and what the reaction was", "amoxicillin is safe for nearly everyone; start it"),
    ("a patient took extra doses of paracetamol", "the amount and timing",
     "how many grams were taken, over what time, and their weight", "a few extra tablets do no harm; no action is needed"),
    ("a patient with COPD wants more oxygen at home", "oxygen saturation and blood gases",
     "their resting oxygen saturation and a recent blood gas", "turn the oxygen up to 5 litres"),
    ("a patient on lithium has a tremor", "a lithium level and kidney function",
     "a lithium level, creatinine, and their fluid intake", "tremor is a known side effect; ignore it"),
    ("a patient after a fall is on apixaban", "head injury signs",
     "whether they hit their head, any vomiting or drowsiness, and the time of the last apixaban dose", "falls are common; check again tomorrow"),
]

ASKS = [
    "Before advising, I need {ask}. Please share these so the answer is safe.",
    "I cannot answer safely without {missing}. Please send {ask}.",
    "To decide, please check {ask} first; I will advise once I have them.",
]
GUESSES = [
    "Probably nothing serious: {guess}.",
    "Likely fine. {guess_cap}.",
    "No need to check anything: {guess}.",
]
QUESTIONS = [
    "Quick question: {situation}. What should we do?",
    "Nurse here. {situation_cap}. Advice please?",
    "On the ward, {situation}. How should I manage this?",
]
NAMES = ["Mr. Okafor", "Ms. Lindqvist", "Mrs. Ferreira", "Mr. Haddad"]
CONTEXT = [
    "",
    " The patient is {name}, seen on 03/14/2024.",
    " Call back on 555-201-{digits} if needed.",
]


def cap(s):
    return s[0].upper() + s[1:]


def pairs(rng):
    out = []
    for c, (situation, missing, ask, guess) in enumerate(CASES):
        # Six of the nine (question, context) wordings: every prompt differs.
        for v in range(6):
            question = QUESTIONS[v % 3].format(situation=situation, situation_cap=cap(situation))
            context = CONTEXT[(v // 3 + v) % 3]
            question += context.format(name=NAMES[(c + v) % 4], digits=f"{1000 + 37 * c + v:04d}")
            chosen = ASKS[(c + v) % 3].format(ask=ask, missing=missing)
            rejected = GUESSES[(c + 2 * v) % 3].format(guess=guess, guess_cap=cap(guess))
            out.append((question, chosen, rejected))
    rng.shuffle(out)
    return out


def azure(q, chosen, rejected):
    return {
        "input": {"messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": q}]},
        "preferred_output": [{"role": "assistant", "content": chosen}],
        "non_preferred_output": [{"role": "assistant", "content": rejected}],
    }


def trl(q, chosen, rejected):
    return {
        "prompt": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": q}],
        "chosen": [{"role": "assistant", "content": chosen}],
        "rejected": [{"role": "assistant", "content": rejected}],
    }


def main():
    here = Path(__file__).resolve().parent
    all_pairs = pairs(random.Random(7))
    half = len(all_pairs) // 2
    for name, make, part in [("azure-dpo.jsonl", azure, all_pairs[:half]), ("trl.jsonl", trl, all_pairs[half:])]:
        with open(here / name, "w", encoding="utf-8") as f:
            for q, chosen, rejected in part:
                f.write(json.dumps(make(q, chosen, rejected), ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
