// The page's live microphone: 24 kHz PCM from an AudioWorklet, streamed to /v1/realtime (OpenAI's
// realtime transcription events); finals in black, the current utterance's deltas in grey.
const $ = (id) => document.getElementById(id);
const live = { socket: null, audio: null };
let status = () => {};

export function toggleMic(report) {
  status = report;
  if (live.socket) stopMic();
  else startMic().catch((error) => { stopMic(); status(`Microphone: ${error.message}`, true); });
}

function toBase64(buffer) {
  const bytes = new Uint8Array(buffer);
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(binary);
}

async function startMic() {
  // Made within the click, so that the browser lets it run (autoplay rules).
  const context = new AudioContext({ sampleRate: 24000 });
  live.audio = { media: null, context };
  const media = await navigator.mediaDevices.getUserMedia({
    audio: { echoCancellation: false, noiseSuppression: false, autoGainControl: false },
  });
  live.audio.media = media;
  await context.audioWorklet.addModule("/static/pcm-worklet.js");
  await context.resume();
  const capture = new AudioWorkletNode(context, "pcm-capture");
  context.createMediaStreamSource(media).connect(capture);
  const mute = context.createGain();  // the graph must reach the speakers to be pulled; silently
  mute.gain.value = 0;
  capture.connect(mute).connect(context.destination);

  const key = $("api-key").value.trim();
  const protocols = key ? ["realtime", `openai-insecure-api-key.${key}`] : ["realtime"];
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const socket = new WebSocket(`${scheme}://${location.host}/v1/realtime?intent=transcription`, protocols);
  live.socket = socket;
  socket.onopen = () => {
    const transcription = { model: $("model").value || "whisper-1" };
    if ($("language").value) transcription.language = $("language").value;
    socket.send(JSON.stringify({
      type: "session.update",
      session: {
        type: "transcription",
        audio: { input: {
          format: { type: "audio/pcm", rate: context.sampleRate },
          transcription,
          turn_detection: { type: "server_vad", silence_duration_ms: 500 },
        } },
      },
    }));
    status("Listening…");
  };
  socket.onmessage = (message) => onRealtimeEvent(JSON.parse(message.data));
  socket.onclose = (event) => {
    if (live.socket === socket) stopMic(event.code === 1000 ? "Stopped" : `Closed: ${event.reason || event.code}`);
  };
  capture.port.onmessage = (message) => {
    const samples = new Int16Array(message.data);
    let peak = 0;
    for (const s of samples) peak = Math.max(peak, Math.abs(s));
    $("level").firstElementChild.style.width = `${Math.min(100, (peak / 32768) * 300)}%`;
    if (socket.readyState === WebSocket.OPEN) {
      socket.send(JSON.stringify({ type: "input_audio_buffer.append", audio: toBase64(message.data) }));
    }
  };
  $("mic").textContent = "Stop microphone";
  $("mic").setAttribute("aria-pressed", "true");
}

// The live caption: each utterance's deltas, until its completed transcript (the final decode's own
// text, which may differ from what the deltas said) takes their place among the finals.
const captions = new Map();

function showCaptions() {
  $("partial").textContent = [...captions.values()].join(" ");
}

function onRealtimeEvent(event) {
  switch (event.type) {
    case "input_audio_buffer.speech_started":
      status("Hearing speech…");
      break;
    case "conversation.item.input_audio_transcription.delta":
      captions.set(event.item_id, (captions.get(event.item_id) || "") + event.delta);
      showCaptions();
      break;
    case "conversation.item.input_audio_transcription.completed":
      if (event.transcript) $("finals").textContent += `${event.transcript}\n`;
      captions.delete(event.item_id);
      showCaptions();
      status("Listening…");
      break;
    case "conversation.item.input_audio_transcription.failed":
      captions.delete(event.item_id);
      showCaptions();
      status(event.error?.message || "error", true);
      break;
    case "error":
      status(event.error?.message || "error", true);
      break;
  }
}

function stopMic(message = "Stopped") {
  const { socket, audio } = state;
  captions.clear();
  showCaptions();
  live.socket = null;
  live.audio = null;
  if (socket && socket.readyState <= WebSocket.OPEN) socket.close(1000);
  if (audio) {
    audio.media?.getTracks().forEach((track) => track.stop());
    audio.context.close();
  }
  $("mic").textContent = "Start microphone";
  $("mic").setAttribute("aria-pressed", "false");
  $("level").firstElementChild.style.width = "0";
  status(message, message.startsWith("Closed"));
}
