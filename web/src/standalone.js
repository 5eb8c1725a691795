// Entry of the offline `.html` dance file (`Dance.save("dance.html")`): everything is in the one
// file: this script, the .glb (base64) and the music (base64, MP3 or WAV) in <script> data
// blocks that gcdance.io.html fills in, and the dance's metadata as JSON. Nothing is fetched:
// the file's Content-Security-Policy forbids any network access.

import { DancePlayer, base64ToBytes, formatTime } from './player.js';

import './standalone.css';

/** The text of a data block, which is then emptied (the decoded copy is all that is kept). */
function takeBlock(id) {
  const node = document.getElementById(id);
  if (!node) return '';
  const text = node.textContent.trim();
  node.textContent = '';
  return text;
}

function showHeader(meta) {
  const title = document.getElementById('gcd-title');
  if (meta.genre) {
    const genre = document.createElement('span');
    genre.className = 'gcd-genre';
    genre.textContent = meta.genre;
    title.append(genre, ' dance');
  } else {
    title.textContent = 'Dance';
  }
  const parts = [];
  if (meta.prompt && meta.prompt !== meta.genre) parts.push(`“${meta.prompt}”`);
  if (Number.isFinite(meta.seconds)) parts.push(formatTime(meta.seconds));
  if (meta.audio?.name) parts.push(`music: ${meta.audio.name}`);
  if (meta.seed !== null && meta.seed !== undefined) parts.push(`seed ${meta.seed}`);
  const sub = document.getElementById('gcd-sub');
  sub.textContent = parts.join(' · ');
  sub.title = sub.textContent;
}

async function main() {
  window.gcdance = { ready: false };
  const meta = JSON.parse(takeBlock('gcdance-meta') || '{}');
  window.gcdance.meta = meta;
  showHeader(meta);
  const player = new DancePlayer(document.getElementById('gcd-main'));
  window.gcdance.player = player;

  const glb = base64ToBytes(takeBlock('gcdance-glb'));
  const download = document.getElementById('gcd-download');
  download.href = URL.createObjectURL(new Blob([glb], { type: 'model/gltf-binary' }));
  download.download = `${meta.basename || 'dance'}.glb`;
  download.hidden = false;

  const mime = document.getElementById('gcdance-audio')?.dataset.mime || 'audio/mpeg';
  const audioText = takeBlock('gcdance-audio');
  const audio = audioText
    ? URL.createObjectURL(new Blob([base64ToBytes(audioText)], { type: mime })) : null;

  await player.load({ glb, audio, duration: meta.seconds });
  if (!audio && meta.audio_note) player.setNote(meta.audio_note);
  player.root.focus({ preventScroll: true });
  window.gcdance.ready = true;
}

main().catch((err) => {
  const main = document.getElementById('gcd-main');
  const p = document.createElement('p');
  p.className = 'gcd-noscript';
  p.textContent = `This dance could not be shown: ${err?.message || err}`;
  main.replaceChildren(p);
  window.gcdance.error = String(err?.message || err);
  console.error(err);
});
