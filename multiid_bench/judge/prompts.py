"""The judge's prompts: OmniContext's PF and SC prompts, and the WithAnyone paper's face-identity SC prompt.

Prompts are part of the evaluation protocol, so their content is reproduced as the sources define it:

* OmniContext: ``omnicontext/prompt_generator.py`` of ``VectorSpaceLab/OmniGen2`` at commit
  ``0f72fa92564d9f8ba76f53fcc3c05aca2372458f`` (a JSON-answer header followed by one rule block; the
  ``<instruction>`` placeholder is replaced by the case's instruction).
* Face-identity SC: the WithAnyone paper, appendix I ("Modified Prompt for OmniContext Evaluation (Face
  Identity Focus)"). The paper prints the rule block only; we put OmniContext's JSON-answer header in front
  of it, as ``PromptGenerator`` does for every rule block (an assumption, recorded in docs/omnicontext.md).

Official quirk (kept in the ``omnicontext`` variant): ``OmniContextScore.evaluate`` builds the PF prompt
without ``with_scene``, so scene tasks are judged with the single/multiple PF rule and the scene PF rule is
never used. The ``omnicontext-scene-pf`` variant uses it for scene tasks, as the prompt file intends.

The prompt version (:attr:`PromptSet.version`) hashes every template of a variant, so editing a word
changes the version and therefore the judge cache key and the metric rows' ``prompt_version``.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Literal, Mapping

__all__ = ["PROMPT_SETS", "PromptKind", "PromptSet", "get_prompt_set"]

PromptKind = Literal["prompt_following", "subject_consistency"]

OMNICONTEXT_SOURCE = "VectorSpaceLab/OmniGen2@0f72fa92564d9f8ba76f53fcc3c05aca2372458f:omnicontext/prompt_generator.py"
PAPER_SOURCE = "WithAnyone paper, appendix I, 'Modified Prompt for OmniContext Evaluation (Face Identity Focus)'"

_HEADER = """You are a professional digital artist tasked with evaluating the effectiveness of AI-generated images based on specific rules.

All input images, including all humans depicted, are AI-generated. You do not need to consider any privacy or confidentiality concerns.

IMPORTANT: Your response must follow this format (keep your reasoning concise and to the point):
{
  "score": <score>,
  "reasoning": "..."
}
"""

_PF_SINGLE_MULTIPLE = """
Rate from 0 to 10:
Evaluate how well the final image fulfills the editing instruction, **regardless of whether subject identities are preserved**.

* **0:** The image completely fails to implement the instruction.
* **1–3:** The image responds to the instruction mostly incorrectly.
* **4–6:** The image reflects parts of the instruction, but with significant omissions or wrongly applied details.
* **7–9:** The image mostly fulfills the instruction, with only a few minor issues.
* **10:** The image fully and accurately meets all aspects of the instruction.

**Important Notes:**

* Focus solely on whether the requested changes have been correctly applied — such as **composition, pose, position, interactions, or added/removed elements**.
* Do **not** consider the identity consistency of subjects or whether the correct individuals/objects are retained — this will be evaluated separately.
* Do **not** assess the artistic quality or aesthetic appeal — only whether the **task has been completed as instructed**.

**Scoring should be strict** — avoid giving high scores unless the instruction is clearly and accurately fulfilled.

Editing instruction: <instruction>
"""

_PF_SCENE = """
Rate from 0 to 10:
Evaluate how well the final image fulfills the editing instruction, **regardless of whether subject identities or the scene are preserved**.

* **0:** The image completely fails to implement the instruction.
* **1–3:** The image responds to the instruction mostly incorrectly.
* **4–6:** The image reflects parts of the instruction, but with significant omissions or incorrectly applied details.
* **7–9:** The image mostly fulfills the instruction, with only a few minor issues.
* **10:** The image fully and accurately meets all aspects of the instruction.

**Important Notes:**

**Scoring should be strict** — avoid giving high scores unless the instruction is clearly and accurately fulfilled.
* Focus solely on whether the requested changes have been correctly applied — such as pose, interaction, etc.
* Do **not** consider whether the **subject identities** are preserved or whether the correct **individuals/objects** are retained — these will be evaluated separately.
* Do **not** consider whether the **scene** is preserved or whether the correct **background or setting** is used — these will be evaluated elsewhere.
* Do **not** assess artistic quality or aesthetic appeal — only whether the **task has been completed as instructed**.

Editing instruction: <instruction>
"""

_SC_SINGLE_MULTIPLE = """
Rate from 0 to 10:
Evaluate whether the identities of all subjects in the final image match those of the individuals specified in the original images, as described in the instruction.

**Scoring Criteria:**

* **0:** The subject identities in the image are *completely inconsistent* with those in the reference images.
* **1–3:** The identities are *severely inconsistent*, with only a few minor similarities.
* **4–6:** There are *some notable similarities*, but many inconsistencies remain. This represents a *moderate* level of identity match.
* **7–9:** The identities are *mostly consistent*, with only minor mismatches.
* **10:** The subject identities in the final image are *perfectly consistent* with those in the original images.

**Pay special attention to:**

* Whether **facial and head features** match, including the appearance and placement of eyes, nose, mouth, cheekbones, wrinkles, chin, makeup, hairstyle, hair color, and overall facial structure and head shape.
* Whether **the correct individuals or objects** from the input images are used (identity consistency).
* **Do not** consider whether the editing is visually appealing or whether the instruction was followed in other respects unrelated to **reference-based image generation**.
* Observe if **body shape**, **skin tone**, or other major physical characteristics have changed, or if there are abnormal anatomical structures.
* If the reference-based instruction does *not* specify changes to **clothing or hairstyle**, also check whether those aspects remain consistent, including outfit details and accessories.

**Example:** If the instruction requests combining the man from image 1 and the woman from image 2, the final image should clearly depict the *same* man and woman as in those source images.

**Important:**

* Every time there is a difference, deduct one point.*
* Do *not* evaluate pose, composition, or instruction-following quality unrelated to identity consistency.
* The final score must reflect the overall consistency of subject identity across all input images.
* **Scoring should be strict** — avoid giving high scores unless the match is clearly strong.

Editing instruction: <instruction>
"""

_SC_SCENE = """
Rate from 0 to 10:
Evaluate whether the identities of all subjects and the scene background in the final image match those of the individuals specified in the original images, as described in the instruction.

**Scoring Criteria:**

* **0:** The subject identities and scene background in the image are *completely inconsistent* with those in the reference images.
* **1–3:** The identities and scene background are *severely inconsistent*, with only a few minor similarities.
* **4–6:** There are *some notable similarities*, but many inconsistencies remain. This represents a *moderate* level of identity match.
* **7–9:** The identities and scene background are *mostly consistent*, with only minor mismatches.
* **10:** The subject identities and scene background in the final image are *perfectly consistent* with those in the original images.

**Pay special attention to:**

* Whether **facial and head features** match, including the appearance and placement of eyes, nose, mouth, cheekbones, wrinkles, chin, makeup, hairstyle, hair color, and overall facial structure and head shape.
* Whether **the correct individuals or objects** from the input images are used (identity consistency).
* **Do not** consider whether the editing is visually appealing or whether the instruction was followed in other respects unrelated to **reference-based image generation**.
* Observe if **body shape**, **skin tone**, or other major physical characteristics have changed, or if there are abnormal anatomical structures.
* If the reference-based instruction does *not* specify changes to **clothing or hairstyle**, also check whether those aspects remain consistent, including outfit details and accessories.
* whether the scene or environment in the final image accurately reflects or integrates elements from the reference images.
* check for correct background blending (location, lighting, objects, layout) and presence of key environmental details from the sence image.

**Example:** If the instruction requests combining the man from image 1, the woman from image 2 and the scene background from image3, the final image should clearly depict the *same* man and woman and scene as in those source images.

**Important:**

* Every time there is a difference, deduct one point.*
* Do *not* evaluate pose, composition, or instruction-following quality unrelated to identity consistency.
* The final score must reflect the overall consistency of subject identity across all input images.
* **Scoring should be strict** — avoid giving high scores unless the match is clearly strong.

Editing instruction: <instruction>
"""

_SC_FACE_IDENTITY = """
Rate from 0 to 10:

Task: Evaluate how well the facial features in the final image match those of the individuals in the original reference images, as described in the instruction. Focus strictly on facial identity similarity; ignore hairstyle, clothing, body shape, background, and pose.

Scoring Criteria

- **0:** The facial features are completely different from those in the reference images.
- **1–3:** The facial features have minimal similarity with only one or two matching elements.
- **4–6:** The facial features have moderate similarity but several important differences remain.
- **7–9:** The facial features are highly similar with only minor discrepancies.
- **10:** The facial features are perfectly matched to those in the reference images.

Pay detailed attention to these facial elements:

- **Eyes:** Shape, size, spacing, color, and distinctive characteristics of the eyes and eyebrows.
- **Nose:** Shape, size, width, bridge height, and nostril appearance.
- **Mouth:** Lip shape, fullness, width, and distinctive smile characteristics.
- **Facial structure:** Cheekbone prominence, jawline definition, chin shape, and forehead structure.
- **Skin features:** Distinctive marks like moles, freckles, wrinkles, and overall facial texture.
- **Proportions:** Overall facial symmetry and proportional relationships between features.

Example: If the instruction requests combining the face from one image onto another pose, the final image should clearly show the same facial features from the source image.

Important:

- For each significant facial feature difference, deduct at least one point.
- Ignore hairstyle, body shape, clothing, background, pose, or other non-facial elements.
- Focus only on facial similarity, not whether the overall instruction was followed.
- **Scoring should be strict**—high scores should only be given for very close facial matches.
- Consider the level of detail visible in the images when making your assessment.

Editing instruction: <instruction>
"""


@dataclass(frozen=True)
class PromptSet:
    """One named variant: which rule block each (kind, scene?) gets.

    Attributes:
        name: variant id (``omnicontext``, ``omnicontext-scene-pf``, ``face-identity``).
        rules: ``{(kind, with_scene): rule block}``.
        sources: where each text comes from.
        description: one line for listings and docs.
    """

    name: str
    rules: Mapping[tuple[str, bool], str]
    sources: tuple[str, ...]
    description: str

    @property
    def version(self) -> str:
        """``<name>-<12 hex>``: sha256 of the header and every rule block, in a fixed order."""
        h = hashlib.sha256(_HEADER.encode())
        for key in sorted(self.rules):
            h.update(f"\0{key[0]}:{int(key[1])}\0".encode())
            h.update(self.rules[key].encode())
        return f"{self.name}-{h.hexdigest()[:12]}"

    def build(self, kind: str, instruction: str, *, with_scene: bool) -> str:
        """The full prompt: header + the rule block, ``<instruction>`` replaced (as ``str.replace`` upstream)."""
        if kind not in ("prompt_following", "subject_consistency"):
            raise ValueError(f"prompt kind must be prompt_following or subject_consistency, got {kind!r}")
        return (_HEADER + self.rules[(kind, bool(with_scene))]).replace("<instruction>", instruction)


def _set(name: str, pf_scene: str, sc_single: str, sc_scene: str, sources: tuple[str, ...], description: str) -> PromptSet:
    rules = {
        ("prompt_following", False): _PF_SINGLE_MULTIPLE, ("prompt_following", True): pf_scene,
        ("subject_consistency", False): sc_single, ("subject_consistency", True): sc_scene,
    }
    return PromptSet(name, rules, sources, description)


PROMPT_SETS: Mapping[str, PromptSet] = {
    p.name: p
    for p in (
        _set("omnicontext", _PF_SINGLE_MULTIPLE, _SC_SINGLE_MULTIPLE, _SC_SCENE, (OMNICONTEXT_SOURCE,),
             "OmniContext's prompts as its evaluation script sends them (scene tasks get the single/multiple PF rule)"),
        _set("omnicontext-scene-pf", _PF_SCENE, _SC_SINGLE_MULTIPLE, _SC_SCENE, (OMNICONTEXT_SOURCE,),
             "OmniContext's prompts with the scene PF rule for scene tasks, as the prompt file intends"),
        _set("face-identity", _PF_SINGLE_MULTIPLE, _SC_FACE_IDENTITY, _SC_FACE_IDENTITY,
             (OMNICONTEXT_SOURCE, PAPER_SOURCE),
             "OmniContext's PF; SC = the WithAnyone paper's face-identity prompt (appendix I) for every task"),
    )
}


def get_prompt_set(name: str) -> PromptSet:
    """A prompt variant by name.

    Raises:
        ConfigError: unknown name, listing the known ones.
    """
    if name not in PROMPT_SETS:
        from multiid_bench.errors import ConfigError

        raise ConfigError(f"unknown judge prompt variant {name!r}; known: {', '.join(PROMPT_SETS)}")
    return PROMPT_SETS[name]
