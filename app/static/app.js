// The asr-server page: a file played beside its streamed transcript (SSE over fetch; see player.js) or
// a job's (POST /v1/audio/jobs, polled), and the live microphone (mic.js). No build step, no libraries.
import { toggleMic } from "/static/mic.js";
import { Player, clock } from "/static/player.js";

const $ = (id) => document.getElementById(id);
const state = { file: null, text: "", result: null };

function status(message, isError = false) {
  $("status").textContent = message;
  $("status").classList.toggle("error", isError);
}

function authHeaders() {
  const key = $("api-key").value.trim();
  return key ? { Authorization: `Bearer ${key}` } : {};
}

async function errorText(response) {
  try {
    const body = await response.json();
    return body.error?.message || body.error || response.statusText;
  } catch {
    return response.statusText;
  }
}

async function loadModels() {
  const response = await fetch("/v1/models", { headers: authHeaders() });
  if (!response.ok) {
    status(response.status === 401 ? "This server needs an API key" : await errorText(response), true);
    return;
  }
  const select = $("model");
  const previous = select.value;
  select.replaceChildren();
  for (const card of (await response.json()).data) {
    const option = new Option(card.id, card.id, card.default, card.default);
    select.append(option);
  }
  if (previous) select.value = previous;
  status("Ready");
}

// --- file ---------------------------------------------------------------------------------------

const player = new Player($("player"), $("transcript"));

function chooseFile(file) {
  if (!file) return;
  state.file = file;
  $("file-name").textContent = `${file.name} (${(file.size / 1048576).toFixed(1)} MB)`;
  setBusy(false);
  player.load(file);
  player.clear();
  setDownloads(false);
}

function endpoint() {
  return $("translate").checked ? "/v1/audio/translations" : "/v1/audio/transcriptions";
}

function form(format, { stream = false, words = stream } = {}) {
  const data = new FormData();
  data.append("file", state.file, state.file.name);
  data.append("model", $("model").value || "whisper-1");
  if ($("language").value) data.append("language", $("language").value);
  data.append("response_format", format);
  if ($("speakers").checked) data.append("diarize", "true");
  if (stream) data.append("stream", "true");
  if (words) {
    data.append("timestamp_granularities[]", "word");
    data.append("timestamp_granularities[]", "segment");
  }
  return data;
}

function showProgress(done, total = player.duration()) {
  // Audio seconds transcribed of the file's length (the local player knows it before the server).
  $("progress").hidden = false;
  $("progress-bar").max = total || 1;
  $("progress-bar").value = total ? Math.min(done, total) : 0;
  $("progress-text").textContent = total ? `${clock(done)} of ${clock(total)}` : clock(done);
}

function setBusy(busy) {
  $("transcribe").disabled = $("as-job").disabled = busy || !state.file;
}

async function run(message, work) {
  state.text = "";
  state.result = null;
  player.clear();
  setDownloads(false);
  showProgress(0);
  setBusy(true);
  status(message);
  try {
    await work();
    setDownloads(true);
    status("Done");
  } catch (error) {
    status(error.message, true);
  } finally {
    setBusy(false);
  }
}

async function transcribe() {
  const response = await fetch(endpoint(), {
    method: "POST", headers: authHeaders(), body: form("json", { stream: true }),
  });
  if (!response.ok) throw new Error(await errorText(response));
  await readEvents(response);
  showProgress(player.duration() ?? 0);
}

// A job outlives this page's connection (long files, flaky networks); its verbose_json (with the
// speakers when asked for) is shown as a stream is.
async function transcribeAsJob() {
  const data = form("verbose_json", { words: true });
  if ($("translate").checked) data.append("task", "translate");
  let response = await fetch("/v1/audio/jobs", { method: "POST", headers: authHeaders(), body: data });
  if (!response.ok) throw new Error(await errorText(response));
  let job = await response.json();
  while (!["completed", "failed", "cancelled"].includes(job.status)) {
    showProgress(job.progress.done_s, job.progress.total_s ?? player.duration());
    status(`Job ${job.status}…`);
    response = await fetch(`/v1/audio/jobs/${job.id}?wait=2`, { headers: authHeaders() });
    if (!response.ok) throw new Error(await errorText(response));
    job = await response.json();
  }
  if (job.status !== "completed") throw new Error(job.error?.message || `the job was ${job.status}`);
  response = await fetch(`/v1/audio/jobs/${job.id}/result`, { headers: authHeaders() });
  if (!response.ok) throw new Error(await errorText(response));
  const body = await response.text();
  const result = JSON.parse(body);
  state.text = result.text;
  state.result = { kind: "verbose_json", blob: new Blob([body], { type: "application/json" }) };
  player.show(result);
  const total = job.progress.total_s ?? result.duration;
  showProgress(total, total);
}

async function readEvents(response) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value;
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0 || (end = buffer.indexOf("\r\n\r\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2).replace(/^\r?\n/, "");
      for (const line of block.split(/\r?\n/)) {
        if (!line.startsWith("data:")) continue;
        const data = line.slice(5).trim();
        if (data === "[DONE]") return;
        const event = JSON.parse(data);
        if (event.type === "error" || event.error) {
          throw new Error(event.error?.message || "the transcription failed");
        }
        if (event.type === "transcript.text.delta") showProgress(event.offset + event.duration);
        if (event.type === "transcript.text.done") state.text = event.text;
        player.onEvent(event);
      }
      player.render();
    }
  }
}

function setDownloads(enabled) {
  for (const button of document.querySelectorAll("[data-download]")) button.disabled = !enabled;
}

async function download(kind) {
  let blob;
  if (kind === "txt") {
    blob = new Blob([state.text + "\n"], { type: "text/plain" });
  } else if (state.result?.kind === kind) {
    blob = state.result.blob;
  } else {
    status(`Making ${kind}…`);
    const response = await fetch(endpoint(), {
      method: "POST", headers: authHeaders(), body: form(kind),
    });
    if (!response.ok) return status(await errorText(response), true);
    blob = await response.blob();
    status("Done");
  }
  const link = document.createElement("a");
  link.href = URL.createObjectURL(blob);
  const suffix = kind.endsWith("json") && kind !== "json" ? `${kind.replace("_json", "")}.json` : kind;
  link.download = `${state.file.name.replace(/\.[^.]*$/, "")}.${suffix}`;
  link.click();
  setTimeout(() => URL.revokeObjectURL(link.href), 10000);
}

// --- wiring ---------------------------------------------------------------------------------------

$("api-key").value = localStorage.getItem("asr-api-key") || "";
$("api-key").addEventListener("change", () => {
  localStorage.setItem("asr-api-key", $("api-key").value.trim());
  loadModels();
});
$("file").addEventListener("change", () => chooseFile($("file").files[0]));
const drop = $("drop");
drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (event) => {
  event.preventDefault();
  drop.classList.remove("over");
  chooseFile(event.dataTransfer.files[0]);
});
$("transcribe").addEventListener("click", () => run("Transcribing…", transcribe));
$("as-job").addEventListener("click", () => run("Submitting the job…", transcribeAsJob));
for (const button of document.querySelectorAll("[data-download]")) {
  button.addEventListener("click", () => download(button.dataset.download));
}
$("mic").addEventListener("click", () => toggleMic(status));
loadModels();
