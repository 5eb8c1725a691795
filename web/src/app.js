// The web page of `gcdance serve`: choose a song, type a prompt (the genre it maps to shows as
// you type), generate with a progress indicator, play the dance in 3D with the music and
// download it in any format. The HTTP API it talks to is described in docs/web.md; every URL is
// relative so the page also works behind a proxy under a sub-path.
//
// For tests, `window.gcdance` holds the player, the last result and the page's state
// ('idle' | 'uploading' | 'generating' | 'loading' | 'done' | 'error').

import { DancePlayer, formatTime } from './player.js';

import './app.css';

const POLL_MS = 400;
const PREVIEW_DEBOUNCE_MS = 250;
const MAX_BUSY_RETRIES = 5;
const FORMAT_LABELS = {
  glb: ['GLB', '3D scene for Blender, three.js, game engines'],
  html: ['HTML', 'this player in one offline file'],
  mp4: ['MP4', 'skeleton video with the music'],
  bvh: ['BVH', 'motion capture for Blender, MotionBuilder'],
  npz: ['NPZ', 'NumPy arrays: motion, joints, SMPL-H'],
};

const $ = (id) => document.getElementById(id);
const ui = {
  form: $('dance-form'),
  song: $('song'),
  drop: $('drop'),
  songInfo: $('song-info'),
  prompt: $('prompt'),
  preview: $('genre-preview'),
  chips: $('genre-chips'),
  start: $('start'),
  duration: $('duration'),
  seed: $('seed'),
  steps: $('steps'),
  generate: $('generate'),
  cancel: $('cancel'),
  progress: $('progress'),
  progressFill: $('progress-fill'),
  progressText: $('progress-text'),
  error: $('error'),
  playerBox: $('player-box'),
  placeholder: $('placeholder'),
  result: $('result'),
  resultGenre: $('result-genre'),
  downloads: $('downloads'),
  status: $('server-status'),
};

const state = {
  player: null,
  result: null,
  state: 'idle',
  songUrl: null, // object URL of the chosen song
  playerSongUrl: null, // object URL of the music the player has (kept while it plays)
  request: null, // the XMLHttpRequest in flight
  poll: 0,
  retryTimer: 0,
  cancelled: false,
};
window.gcdance = state;

// ------------------------------------------------------------------------------------ helpers
function setState(name) {
  state.state = name;
  document.body.dataset.state = name;
}

function showError(text) {
  ui.error.textContent = text || '';
  ui.error.hidden = !text;
}

function setProgress(text, fraction = null) {
  // Before the first dance the empty stage says what is happening too (the form's own
  // progress bar can be below the fold on a small screen).
  if (ui.placeholder.isConnected) ui.placeholder.textContent = text || 'Your dance will appear here.';
  ui.progress.hidden = !text;
  ui.progressText.textContent = text || '';
  const indeterminate = fraction === null;
  ui.progress.classList.toggle('indeterminate', indeterminate);
  ui.progressFill.style.width = indeterminate ? '' : `${Math.round(100 * Math.min(Math.max(fraction, 0), 1))}%`;
}

function setBusy(busy) {
  ui.generate.disabled = busy;
  ui.cancel.hidden = !busy;
  for (const input of [ui.song, ui.prompt, ui.start, ui.duration, ui.seed, ui.steps]) {
    input.disabled = busy;
  }
}

/** A random job id the server reports progress under ([A-Za-z0-9_-], 22 characters). */
function newJobId() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return btoa(String.fromCharCode(...bytes)).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

function humanSize(bytes) {
  if (bytes < 1024 * 1024) return `${Math.max(1, Math.round(bytes / 1024))} KB`;
  return `${(bytes / (1024 * 1024)).toFixed(1)} MB`;
}

/** The message of an error response ({error: "..."} JSON, or its text). */
function errorText(status, body) {
  try {
    const data = JSON.parse(body);
    if (data && typeof data.error === 'string') return data.error;
    if (data && typeof data.detail === 'string') return data.detail;
  } catch {
    // not JSON: fall through
  }
  const text = (body || '').trim();
  return text && text.length < 300 ? `${text} (HTTP ${status})` : `The server answered HTTP ${status}.`;
}

function probabilityBars(container, probs, limit = 3) {
  const top = Object.entries(probs || {}).sort((a, b) => b[1] - a[1]).slice(0, limit);
  container.replaceChildren();
  for (const [name, p] of top) {
    const row = document.createElement('div');
    row.className = 'prob';
    const label = document.createElement('span');
    label.className = 'prob-name';
    label.textContent = name;
    const track = document.createElement('span');
    track.className = 'prob-track';
    const fill = document.createElement('span');
    fill.className = 'prob-fill';
    fill.style.width = `${(100 * p).toFixed(1)}%`;
    track.append(fill);
    const value = document.createElement('span');
    value.className = 'prob-value';
    value.textContent = `${Math.round(100 * p)}%`;
    row.append(label, track, value);
    container.append(row);
  }
}

// ------------------------------------------------------------------------------------- genres
let previewTimer = 0;
let previewAbort = null;

async function loadGenres() {
  try {
    const res = await fetch('api/genres');
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    const data = await res.json();
    ui.chips.replaceChildren();
    for (const g of data.genres || []) {
      const chip = document.createElement('button');
      chip.type = 'button';
      chip.className = 'chip';
      chip.textContent = g.name;
      if (g.aliases?.length) chip.title = `also: ${g.aliases.join(', ')}`;
      chip.addEventListener('click', () => {
        ui.prompt.value = g.name;
        ui.prompt.focus();
        schedulePreview(0);
      });
      ui.chips.append(chip);
    }
    ui.status.textContent = '';
  } catch (err) {
    ui.status.textContent = 'The gcdance server cannot be reached.';
    ui.status.classList.add('bad');
  }
}

function markChip(genre) {
  for (const chip of ui.chips.children) chip.classList.toggle('on', chip.textContent === genre);
}

function schedulePreview(delay = PREVIEW_DEBOUNCE_MS) {
  clearTimeout(previewTimer);
  previewTimer = setTimeout(updatePreview, delay);
}

async function updatePreview() {
  const text = ui.prompt.value.trim();
  previewAbort?.abort();
  if (!text) {
    ui.preview.replaceChildren();
    markChip(null);
    return;
  }
  previewAbort = new AbortController();
  try {
    const res = await fetch(`api/genres?prompt=${encodeURIComponent(text)}`, {
      signal: previewAbort.signal,
    });
    if (!res.ok) throw new Error(errorText(res.status, await res.text()));
    const data = await res.json();
    const head = document.createElement('div');
    head.className = 'preview-head';
    head.append('Genre: ');
    const strong = document.createElement('strong');
    strong.textContent = data.genre;
    head.append(strong);
    const bars = document.createElement('div');
    probabilityBars(bars, data.genre_probs);
    ui.preview.replaceChildren(head, bars);
    markChip(data.genre);
  } catch (err) {
    if (err.name === 'AbortError') return;
    ui.preview.textContent = `The genre cannot be shown: ${err.message}`;
  }
}

// --------------------------------------------------------------------------------------- song
function chosenSong() {
  return ui.song.files && ui.song.files[0] ? ui.song.files[0] : null;
}

function onSongChosen() {
  const file = chosenSong();
  if (state.songUrl && state.songUrl !== state.playerSongUrl) URL.revokeObjectURL(state.songUrl);
  state.songUrl = null;
  if (!file) {
    ui.songInfo.innerHTML = 'Drop a song here or <u>choose a file</u><br><small>mp3, wav, flac, ogg or opus</small>';
    ui.drop.classList.remove('has-file');
    return;
  }
  state.songUrl = URL.createObjectURL(file);
  ui.drop.classList.add('has-file');
  const name = document.createElement('strong');
  name.textContent = file.name;
  const detail = document.createElement('small');
  detail.textContent = humanSize(file.size);
  ui.songInfo.replaceChildren(name, document.createElement('br'), detail);
  // The song's length, from the browser's own decoder (when it knows the format).
  const probe = new Audio();
  probe.preload = 'metadata';
  probe.addEventListener('loadedmetadata', () => {
    if (Number.isFinite(probe.duration)) detail.textContent = `${formatTime(probe.duration)} · ${humanSize(file.size)}`;
    probe.removeAttribute('src');
  }, { once: true });
  probe.addEventListener('error', () => probe.removeAttribute('src'), { once: true });
  probe.src = state.songUrl;
}

// ------------------------------------------------------------------------------------ request
function readNumber(input, { integer = false, min = null, name }) {
  const raw = input.value.trim();
  if (!raw) return null;
  const value = Number(raw);
  if (!Number.isFinite(value) || (integer && !Number.isInteger(value)) || (min !== null && value < min)) {
    const kind = integer ? 'a whole number' : 'a number';
    throw new Error(`${name} must be ${kind}${min !== null ? ` of at least ${min}` : ''}; got "${raw}".`);
  }
  return value;
}

function buildRequest() {
  const file = chosenSong();
  if (!file) throw new Error('Choose a song first (mp3, wav, flac, ogg or opus).');
  const prompt = ui.prompt.value.trim();
  if (!prompt) throw new Error('Type a prompt: a genre name (click one below) or a description of the dance.');
  const numbers = {
    start: readNumber(ui.start, { min: 0, name: 'Start' }),
    duration: readNumber(ui.duration, { min: 1, name: 'Length' }),
    seed: readNumber(ui.seed, { integer: true, min: 0, name: 'Seed' }),
    steps: readNumber(ui.steps, { integer: true, min: 1, name: 'Steps' }),
  };
  const form = new FormData();
  form.append('audio', file, file.name);
  form.append('prompt', prompt);
  for (const [k, v] of Object.entries(numbers)) if (v !== null) form.append(k, String(v));
  const job = newJobId();
  form.append('job', job);
  return { form, job, start: numbers.start || 0, songUrl: state.songUrl };
}

function stopPolling() {
  clearInterval(state.poll);
  state.poll = 0;
}

function startPolling(job) {
  stopPolling();
  let inFlight = false;
  state.poll = setInterval(async () => {
    if (inFlight || state.state !== 'generating') return;
    inFlight = true;
    try {
      const res = await fetch(`api/jobs/${encodeURIComponent(job)}`, { cache: 'no-store' });
      if (!res.ok || state.state !== 'generating') return; // 404: not registered yet
      const info = await res.json();
      if (info.state === 'queued') setProgress('Waiting for another dance to finish…');
      else if (info.state === 'running' && info.steps > 0) {
        setProgress(`Generating: step ${info.step} of ${info.steps}`, info.step / info.steps);
      } else if (info.state === 'done') setProgress('Writing the files…', 1);
    } catch {
      // A missed poll changes nothing; the request itself reports failures.
    } finally {
      inFlight = false;
    }
  }, POLL_MS);
}

function send(request, attempt = 1) {
  const xhr = new XMLHttpRequest();
  state.request = xhr;
  xhr.open('POST', 'api/dances');
  xhr.responseType = 'text';
  setState('uploading');
  setProgress('Uploading the song…', 0);
  xhr.upload.addEventListener('progress', (ev) => {
    if (ev.lengthComputable) setProgress(`Uploading the song… ${Math.round((100 * ev.loaded) / ev.total)}%`, ev.loaded / ev.total);
  });
  xhr.upload.addEventListener('load', () => {
    if (state.request !== xhr) return;
    setState('generating');
    setProgress('Generating…');
    startPolling(request.job);
  });
  xhr.addEventListener('load', () => {
    if (state.request !== xhr) return;
    state.request = null;
    stopPolling();
    if (xhr.status === 200) {
      let result;
      try {
        result = JSON.parse(xhr.responseText);
      } catch {
        fail('The server sent an answer that is not JSON; is this a gcdance server?');
        return;
      }
      showResult(result, request).catch((err) => fail(err.message));
    } else if (xhr.status === 503 && attempt < MAX_BUSY_RETRIES) {
      const wait = Math.min(Math.max(Number(xhr.getResponseHeader('Retry-After')) || 5, 1), 120);
      retryAfter(request, attempt, wait);
    } else {
      fail(errorText(xhr.status, xhr.responseText));
    }
  });
  xhr.addEventListener('error', () => {
    if (state.request !== xhr) return;
    state.request = null;
    stopPolling();
    fail('The gcdance server cannot be reached. Is `gcdance serve` still running?');
  });
  xhr.send(request.form);
}

function retryAfter(request, attempt, seconds) {
  setState('uploading');
  let left = Math.ceil(seconds);
  const tick = () => {
    if (state.cancelled) return;
    if (left <= 0) {
      send({ ...request }, attempt + 1);
      return;
    }
    setProgress(`The server is busy with another dance; trying again in ${left} s…`);
    left -= 1;
    state.retryTimer = setTimeout(tick, 1000);
  };
  tick();
}

function fail(message) {
  setState('error');
  setBusy(false);
  setProgress('');
  showError(message);
}

function cancel() {
  state.cancelled = true;
  clearTimeout(state.retryTimer);
  stopPolling();
  if (state.request) {
    const xhr = state.request;
    state.request = null;
    xhr.abort();
  }
  setState('idle');
  setBusy(false);
  setProgress('');
  showError('');
}

function onSubmit(ev) {
  ev.preventDefault();
  showError('');
  let request;
  try {
    request = buildRequest();
  } catch (err) {
    showError(err.message);
    return;
  }
  state.cancelled = false;
  setBusy(true);
  send(request);
  ui.progress.scrollIntoView({ block: 'nearest', behavior: 'smooth' });
}

// ------------------------------------------------------------------------------------- result
async function showResult(result, request) {
  setState('loading');
  setProgress('Loading the dance…');
  const res = await fetch(result.files.glb);
  if (!res.ok) throw new Error(`The dance file could not be downloaded: ${errorText(res.status, await res.text())}`);
  const glb = await res.arrayBuffer();
  if (!state.player) {
    ui.placeholder.remove();
    state.player = new DancePlayer(ui.playerBox, { onError: (text) => showError(text) });
  }
  await state.player.load({
    glb, audio: request.songUrl, audioOffset: request.start, duration: result.seconds,
  });
  const previous = state.playerSongUrl;
  state.playerSongUrl = request.songUrl;
  if (previous && previous !== request.songUrl && previous !== state.songUrl) URL.revokeObjectURL(previous);
  state.result = result;
  showDownloads(result);
  setBusy(false);
  setProgress('');
  setState('done');
}

function showDownloads(result) {
  ui.result.hidden = false;
  const head = document.createElement('div');
  head.className = 'preview-head';
  head.append('Danced as ');
  const strong = document.createElement('strong');
  strong.textContent = result.genre;
  head.append(strong, ` · ${formatTime(result.seconds)} at ${result.fps} fps`);
  const bars = document.createElement('div');
  probabilityBars(bars, result.genre_probs);
  ui.resultGenre.replaceChildren(head, bars);

  ui.downloads.replaceChildren();
  const base = `gcdance-${(result.genre || 'dance').replace(/[^A-Za-z0-9_-]+/g, '-')}-${result.id}`;
  for (const [ext, [label, hint]] of Object.entries(FORMAT_LABELS)) {
    const url = result.files?.[ext];
    if (!url) continue;
    const a = document.createElement('a');
    a.className = 'download';
    a.href = url;
    a.download = `${base}.${ext}`;
    a.dataset.format = ext;
    a.title = hint;
    a.textContent = label;
    ui.downloads.append(a);
  }
}

// ------------------------------------------------------------------------------------ wiring
ui.form.addEventListener('submit', onSubmit);
ui.cancel.addEventListener('click', cancel);
ui.prompt.addEventListener('input', () => schedulePreview());
ui.song.addEventListener('change', onSongChosen);
for (const name of ['dragenter', 'dragover']) {
  ui.drop.addEventListener(name, () => ui.drop.classList.add('dragging'));
}
for (const name of ['dragleave', 'drop']) {
  ui.drop.addEventListener(name, () => ui.drop.classList.remove('dragging'));
}
setState('idle');
loadGenres();
if (ui.prompt.value.trim()) schedulePreview(0);
if (chosenSong()) onSongChosen(); // a file kept by the browser across a reload
