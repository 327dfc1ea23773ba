"""The four criteria of the paper's user study (appendix H.2) and the participant instructions, in our words.

Every criterion is rated with 1-5 stars where 5 is always *better*: for copy-paste, 5 stars means the
person was re-imagined (new pose, expression, lighting), 1 star means a pasted replica of a reference.
Keeping "more stars = better" on every criterion lets ranks, Fig. 8 and Table 7 read the same way.
"""
from __future__ import annotations

from dataclasses import dataclass

__all__ = ["CRITERIA", "CRITERION_IDS", "INSTRUCTIONS_VERSION", "MACHINE_METRIC", "OVERVIEW", "STARS", "Criterion"]

#: Allowed star values (the paper's 5-star scale).
STARS = (1, 2, 3, 4, 5)
INSTRUCTIONS_VERSION = "1"


@dataclass(frozen=True)
class Criterion:
    id: str
    name: str
    question: str
    guidance: tuple[str, ...]


CRITERIA: tuple[Criterion, ...] = (
    Criterion(
        id="id_sim", name="Identity similarity",
        question="Do the people in the result look like the people in the ground-truth photo?",
        guidance=(
            "Compare each result with the ground-truth photo as a whole, not with one reference crop alone.",
            "Judge only who the people are. Ignore image quality, artefacts and overall beauty here.",
            "5 stars: clearly the same people. 1 star: strangers.",
        ),
    ),
    Criterion(
        id="copy_paste", name="Copy-paste (less is better)",
        question="Does a person look lifted straight from one of the reference crops?",
        guidance=(
            "Look at head pose and orientation, facial expression and demeanour, and lighting and shading.",
            "A good result keeps the identity but changes these to fit the new scene.",
            "5 stars: natural variation, no sign of copying. 1 star: a pasted replica of a reference.",
        ),
    ),
    Criterion(
        id="prompt", name="Prompt following",
        question="Does the result show what the prompt asks for?",
        guidance=(
            "Check the people, their actions, the setting and any other constraint the prompt states.",
            "5 stars: everything the prompt asks for. 1 star: unrelated to the prompt.",
        ),
    ),
    Criterion(
        id="aesthetics", name="Aesthetics",
        question="How good does the image look?",
        guidance=(
            "Smooth rendering, plausible bodies and poses, a harmonious composition.",
            "5 stars: pleasant and clean. 1 star: broken or ugly.",
        ),
    ),
)
CRITERION_IDS = tuple(c.id for c in CRITERIA)

#: Which per-case machine metric each criterion is compared with in Table 7 (paper: Copy-Paste, ID Sim).
MACHINE_METRIC = {"copy_paste": "copy_paste", "id_sim": "sim_gt"}

#: The task overview shown before the first trial (appendix H.2, our wording).
OVERVIEW = (
    "Several methods were asked to make a new photo of the people shown in the reference crops, following a "
    "text prompt. The ground-truth photo is the real photo that the prompt describes.",
    "Each screen is one trial: read the prompt, look at the ground-truth photo and the reference crops, then "
    "rate every result on the four criteria below with 1 to 5 stars (5 = best). Results are shown in a "
    "random order and without method names; judge each result on its own.",
    "Your answers are saved when you press 'Save and next'. You can close the page at any time and open your "
    "invitation link again to continue where you stopped.",
)
