// vitrine shopper page: plain JS over the gateway's JSON API.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { offset: 0, topK: 12, image: null, lastQuery: null, mode: "search", similarTo: null, facets: {}, panelFor: null };

function escapeHtml(text) {
  return String(text ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
}

async function loadBundle() {
  const fusion = $("fusion");
  const methods = ["", "rrf", "weighted_rrf", "combsum", "combmnz", "borda"];
  try {
    const response = await fetch("/api/bundle");
    if (!response.ok) throw new Error(await response.text());
    const bundle = await response.json();
    for (const m of bundle.members || []) {
      methods.push(`single:${m.name}`);
      const label = document.createElement("label");
      label.innerHTML = `<input type="checkbox" name="member" value="${escapeHtml(m.name)}" checked> ${escapeHtml(m.name)}`;
      $("members").appendChild(label);
    }
    $("status").textContent = `Bundle ${bundle.name} ${bundle.version}: ${(bundle.members || []).length} members.`;
  } catch (err) {
    $("status").textContent = `Could not read the bundle: ${err.message}`;
  }
  for (const m of methods) {
    const option = document.createElement("option");
    option.value = m;
    option.textContent = m || "bundle default";
    fusion.appendChild(option);
  }
}

function filters() {
  const out = Object.entries(state.facets).map(([field, value]) => `${field}=${value}`);
  for (const field of ["gender", "articleType", "baseColour"]) {
    const value = $(`f-${field}`).value.trim();
    if (value && !(field in state.facets)) out.push(`${field}=${value}`);
  }
  return out;
}

function selectedMembers() {
  const boxes = [...document.querySelectorAll("input[name=member]")];
  const checked = boxes.filter((b) => b.checked).map((b) => b.value);
  return checked.length === boxes.length ? [] : checked;
}

async function runSearch() {
  const form = new FormData();
  form.append("q", $("q").value.trim());
  form.append("text_weight", $("text-weight").value);
  form.append("top_k", String(state.topK));
  form.append("offset", String(state.offset));
  form.append("fusion", $("fusion").value);
  for (const m of selectedMembers()) form.append("members", m);
  for (const f of filters()) form.append("filters", f);
  form.append("price_min", $("price-min").value);
  form.append("price_max", $("price-max").value);
  if (state.image) form.append("image", state.image, state.image.name || "upload");
  return fetch("/api/search", { method: "POST", body: form });
}

async function runSimilar() {
  const params = new URLSearchParams({ top_k: state.topK, offset: state.offset, fusion: $("fusion").value });
  return fetch(`/api/items/${encodeURIComponent(state.similarTo)}/similar?${params}`);
}

async function search() {
  state.topK = Math.max(1, parseInt($("top-k").value, 10) || 12);
  if (state.mode === "search" && !$("q").value.trim() && !state.image) {
    $("status").textContent = "Type something or add an image.";
    return;
  }
  $("status").textContent = "Searching…";
  const started = performance.now();
  const response = state.mode === "similar" ? await runSimilar() : await runSearch();
  const body = await response.json();
  if (!response.ok) {
    $("status").textContent = `Error: ${body.detail || response.statusText}`;
    $("results").innerHTML = "";
    return;
  }
  const ms = Math.round(performance.now() - started);
  const what = state.mode === "similar" ? `items like ${state.similarTo}` : "results";
  const partial = body.partial ? ` (partial: ${body.missing_members.join(", ")} missing)` : "";
  $("status").textContent = `${body.hits.length} ${what} in ${ms} ms, fusion ${body.fusion}${partial}.`;
  render(body.hits);
  if (state.mode === "search") loadFacets();
}

function render(hits) {
  const results = $("results");
  results.innerHTML = "";
  for (const hit of hits) {
    const a = hit.attributes || {};
    const card = document.createElement("article");
    card.className = "card";
    card.dataset.id = hit.id;
    const explain = (hit.members || []).map((m) => `${escapeHtml(m.member)}: #${m.rank} (${m.score.toFixed(3)}, c${m.cluster})`).join("<br>");
    card.innerHTML = `
      <img src="${hit.image_url}" alt="${escapeHtml(a.productDisplayName || hit.id)}" loading="lazy">
      <span class="score">${hit.score.toFixed(4)}</span>
      <div class="name">${escapeHtml(a.productDisplayName || a.text || hit.id)}</div>
      <div class="meta">${escapeHtml([a.articleType, a.baseColour, a.gender].filter(Boolean).join(" · "))}</div>
      <div class="explain">${explain}</div>
      <button class="mlt" type="button">More like this</button>`;
    card.querySelector(".mlt").addEventListener("click", (event) => {
      event.stopPropagation();
      state.mode = "similar";
      state.similarTo = hit.id;
      state.offset = 0;
      search();
    });
    card.addEventListener("click", () => showPanel(hit));
    results.appendChild(card);
  }
  $("pager").hidden = hits.length === 0 && state.offset === 0;
  $("prev").disabled = state.offset === 0;
  $("next").disabled = hits.length < state.topK;
  $("page-label").textContent = `Page ${Math.floor(state.offset / state.topK) + 1}`;
}

async function storedItem(id) {
  const response = await fetch(`/api/items/${encodeURIComponent(id)}`);
  const body = await response.json();
  if (!response.ok) throw new Error(body.detail || response.statusText);
  return body;
}

async function showPanel(hit) {
  const members = (hit.members || []).map((m) => `<tr><td>${escapeHtml(m.member)}</td><td>rank ${m.rank}, cosine ${m.score.toFixed(4)}, cluster ${m.cluster}</td></tr>`).join("");
  const why = `<h4>Why it matched (score ${hit.score.toFixed(4)})</h4><table>${members}</table>`;
  $("panel-body").innerHTML = `<h3>${escapeHtml(hit.id)}</h3><img src="${hit.image_url}" alt="" style="max-width:100%"><p class="stored">Loading…</p>${why}`;
  $("panel").hidden = false;
  state.panelFor = hit.id;
  let details;
  try {
    const item = await storedItem(hit.id);
    const rows = Object.entries(item.attributes).map(([k, v]) => `<tr><td>${escapeHtml(k)}</td><td>${escapeHtml(v)}</td></tr>`).join("");
    details = `<p class="text">${escapeHtml(item.text || "(no stored text)")}</p><table class="attributes">${rows}</table>`;
  } catch (err) {
    details = `<p class="error">Could not read the stored item: ${escapeHtml(err.message)}</p>`;
  }
  const placeholder = $("panel-body").querySelector(".stored");
  if (placeholder && state.panelFor === hit.id) placeholder.outerHTML = details;
}

function setImage(file) {
  if (!file || !file.type.startsWith("image/")) return;
  state.image = file;
  const preview = $("drop-preview");
  preview.src = URL.createObjectURL(file);
  preview.hidden = false;
  $("drop-label").hidden = true;
}

function clearImage() {
  state.image = null;
  $("drop-preview").hidden = true;
  $("drop-label").hidden = false;
  $("image").value = "";
}

function wire() {
  $("search-form").addEventListener("submit", (event) => {
    event.preventDefault();
    state.mode = "search";
    state.offset = 0;
    search();
  });
  $("text-weight").addEventListener("input", () => { $("text-weight-value").textContent = $("text-weight").value; });
  const drop = $("drop");
  drop.addEventListener("click", () => $("image").click());
  $("image").addEventListener("change", () => setImage($("image").files[0]));
  drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    setImage(event.dataTransfer.files[0]);
  });
  document.addEventListener("paste", (event) => {
    const item = [...(event.clipboardData?.items || [])].find((i) => i.type.startsWith("image/"));
    if (item) setImage(item.getAsFile());
  });
  $("clear-image").addEventListener("click", clearImage);
  $("prev").addEventListener("click", () => { state.offset = Math.max(0, state.offset - state.topK); search(); });
  $("next").addEventListener("click", () => { state.offset += state.topK; search(); });
  $("panel-close").addEventListener("click", () => { $("panel").hidden = true; });
}

// -- facet sidebar: counts per value; a click refines the search, the price range bounds it --

async function loadSchema() {
  const response = await fetch("/api/schema");
  if (!response.ok) return;
  const schema = await response.json();
  $("price-range").hidden = !schema.price_range;
  $("price-apply").addEventListener("click", () => { state.offset = 0; search(); });
}

async function loadFacets() {
  const params = new URLSearchParams({ q: state.image ? "" : $("q").value.trim(), price_min: $("price-min").value, price_max: $("price-max").value });
  for (const f of filters()) params.append("filters", f);
  const response = await fetch(`/api/facets?${params}`);
  if (!response.ok) return;
  renderFacets((await response.json()).facets || []);
}

function renderFacets(facets) {
  const groups = $("facet-groups");
  groups.innerHTML = "";
  for (const facet of facets) {
    const group = document.createElement("fieldset");
    group.className = "facet";
    group.dataset.field = facet.field;
    group.innerHTML = `<legend>${escapeHtml(facet.field)}</legend>`;
    for (const v of facet.values) {
      const chosen = state.facets[facet.field] === v.value;
      const button = document.createElement("button");
      button.type = "button";
      button.className = chosen ? "facet-value chosen" : "facet-value";
      button.dataset.value = v.value;
      button.innerHTML = `${escapeHtml(v.value)} <span class="count">${v.count}</span>`;
      button.addEventListener("click", () => {
        if (chosen) delete state.facets[facet.field]; else state.facets[facet.field] = v.value;
        state.offset = 0;
        search();
      });
      group.appendChild(button);
    }
    groups.appendChild(group);
  }
  $("facets-clear").hidden = Object.keys(state.facets).length === 0;
}

$("facets-clear").addEventListener("click", () => { state.facets = {}; state.offset = 0; search(); });

wire();
loadBundle();
loadSchema();
