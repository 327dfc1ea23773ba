// The rating page: plain JS, no build step. Talks to /api/<token>/... only; never sees model names.
"use strict";
(function () {
  const token = document.body.dataset.token;
  const criteria = JSON.parse(document.getElementById("criteria-data").textContent);
  const api = "/api/" + encodeURIComponent(token);
  const $ = (id) => document.getElementById(id);
  let trial = null, answers = {}, cursor = { slot: 0, crit: 0 }, shownAt = 0, nTrials = 0;

  function letter(slot) { return String.fromCharCode(65 + slot); }

  async function getJSON(url) {
    const r = await fetch(url, { cache: "no-store" });
    if (!r.ok) throw new Error((await r.json()).error || r.statusText);
    return r.json();
  }

  async function refreshState() {
    const s = await getJSON(api + "/state");
    nTrials = s.n_trials;
    return s;
  }

  function complete() {
    return trial && trial.results.every((r) => criteria.every((c) => answers[r.slot] && answers[r.slot][c.id]));
  }

  function setStars(slot, crit, value) {
    answers[slot] = answers[slot] || {};
    answers[slot][crit] = value;
    render();
  }

  function render() {
    document.querySelectorAll(".rating").forEach((row) => {
      const slot = +row.dataset.slot, crit = row.dataset.crit;
      const v = (answers[slot] || {})[crit] || 0;
      row.querySelectorAll(".stars button").forEach((b) => {
        b.classList.toggle("on", +b.dataset.v <= v);
        b.setAttribute("aria-pressed", String(+b.dataset.v === v));
      });
      row.classList.toggle("cursor", slot === cursor.slot && crit === criteria[cursor.crit].id);
    });
    const done = trial.results.length * criteria.length;
    let given = 0;
    trial.results.forEach((r) => criteria.forEach((c) => { if ((answers[r.slot] || {})[c.id]) given++; }));
    $("save").disabled = !complete();
    $("status").textContent = complete() ? "All rated. Enter or 'Save and next' saves this trial."
      : given + " of " + done + " ratings given";
    $("prev").disabled = trial.n <= 1;
  }

  function img(src, alt) { const i = document.createElement("img"); i.src = src; i.alt = alt; i.loading = "lazy"; return i; }

  async function show(n) {
    trial = await getJSON(api + "/trial/" + n);
    answers = JSON.parse(JSON.stringify(trial.answers || {}));
    cursor = { slot: 0, crit: 0 };
    shownAt = Date.now();
    $("intro").hidden = true; $("done").hidden = true; $("trial").hidden = false;
    $("progress").textContent = "Trial " + trial.n + " of " + trial.n_trials + (trial.submitted ? " (saved)" : "");
    $("prompt").textContent = trial.prompt;
    $("gt").src = trial.gt;
    const refs = $("refs"); refs.replaceChildren();
    trial.refs.forEach((src, i) => {
      const f = document.createElement("figure");
      f.append(img(src, "reference " + (i + 1)));
      const cap = document.createElement("figcaption"); cap.textContent = "Reference " + (i + 1); f.append(cap);
      refs.append(f);
    });
    const box = $("results"); box.replaceChildren();
    trial.results.forEach((r) => {
      const card = document.createElement("div"); card.className = "result"; card.dataset.slot = r.slot;
      const h = document.createElement("h3"); h.textContent = "Result " + letter(r.slot); card.append(h);
      card.append(img(r.image, "result " + letter(r.slot)));
      criteria.forEach((c, ci) => {
        const row = document.createElement("div"); row.className = "rating";
        row.dataset.slot = r.slot; row.dataset.crit = c.id;
        const name = document.createElement("span"); name.className = "name"; name.textContent = c.name;
        const stars = document.createElement("span"); stars.className = "stars"; stars.setAttribute("role", "group");
        stars.setAttribute("aria-label", c.name + ", result " + letter(r.slot));
        for (let v = 1; v <= 5; v++) {
          const b = document.createElement("button"); b.type = "button"; b.dataset.v = v; b.textContent = "\u2605";
          b.setAttribute("aria-label", v + (v === 1 ? " star" : " stars"));
          b.addEventListener("click", () => { cursor = { slot: r.slot, crit: ci }; setStars(r.slot, c.id, v); });
          stars.append(b);
        }
        row.append(name, stars); card.append(row);
      });
      box.append(card);
    });
    render();
    window.scrollTo(0, 0);
  }

  async function save() {
    if (!complete()) return;
    $("save").disabled = true;
    $("status").textContent = "Saving...";
    const r = await fetch(api + "/trial/" + trial.n, {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ ratings: answers, elapsed_ms: Date.now() - shownAt }),
    });
    if (!r.ok) { $("status").textContent = "Not saved: " + ((await r.json()).error || r.statusText); render(); return; }
    const s = await refreshState();
    if (trial.n < nTrials) await show(s.next && s.next > trial.n ? s.next : trial.n + 1);
    else if (s.next) await show(s.next);
    else finish();
  }

  function finish() {
    $("trial").hidden = true; $("intro").hidden = true; $("done").hidden = false;
    $("progress").textContent = "All " + nTrials + " trials saved";
  }

  function move(ds, dc) {
    const k = trial.results.length, m = criteria.length;
    let idx = cursor.slot * m + cursor.crit;
    if (ds) idx = Math.min(Math.max(0, (cursor.slot + ds)), k - 1) * m + cursor.crit;
    if (dc) idx = Math.min(Math.max(0, idx + dc), k * m - 1);
    cursor = { slot: Math.floor(idx / m), crit: idx % m };
    render();
  }

  document.addEventListener("keydown", (e) => {
    if ($("trial").hidden || e.ctrlKey || e.metaKey || e.altKey) return;
    if (e.key >= "1" && e.key <= "5") {
      setStars(cursor.slot, criteria[cursor.crit].id, +e.key);
      move(0, 1); e.preventDefault();
    } else if (e.key === "ArrowRight") { move(1, 0); e.preventDefault(); }
    else if (e.key === "ArrowLeft") { move(-1, 0); e.preventDefault(); }
    else if (e.key === "ArrowDown") { move(0, 1); e.preventDefault(); }
    else if (e.key === "ArrowUp") { move(0, -1); e.preventDefault(); }
    else if (e.key === "Enter") { save(); e.preventDefault(); }
    else if (e.key === "p" && trial.n > 1) { show(trial.n - 1); }
  });

  $("save").addEventListener("click", save);
  $("prev").addEventListener("click", () => { if (trial.n > 1) show(trial.n - 1); });
  $("review").addEventListener("click", () => show(1));
  $("start").addEventListener("click", async () => {
    const s = await refreshState();
    if (s.next) await show(s.next); else finish();
  });
  refreshState().then((s) => {
    $("progress").textContent = s.done + " of " + s.n_trials + " trials saved";
    $("start").textContent = s.done ? "Continue (trial " + (s.next || s.n_trials) + ")" : "Start";
  });
})();
