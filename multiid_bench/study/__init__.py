"""The paper's user study (appendix H) as a tool: ``mbench study create | invite | serve | results``.

Why: a copy-paste metric is only as credible as its agreement with people. The paper asked ten trained
raters to give 1-5 stars to five methods' results per trial on four criteria (Fig. 20), drew the average
rankings (Fig. 8) and correlated machine and human within-trial rankings (Table 7). This package makes
that study reproducible: a study folder holds a SQLite database (the definition, raters, answers) and the
images the page shows; nothing in it names a model to a rater.

Modules: :mod:`.criteria` (the four criteria and the instructions), :mod:`.db` (schema, connections),
:mod:`.create` (sampling and copying), :mod:`.invite` (rater tokens), :mod:`.server` (the web page,
optional extra ``multiid-bench[study]``), :mod:`.agreement` (Kendall's W, Krippendorff's alpha),
:mod:`.results` (Fig. 8 data, agreement, Table 7) and :mod:`.figure` (the bubble chart).
"""
from __future__ import annotations

__all__: list[str] = []
