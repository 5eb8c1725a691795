// gcdance's 3D dance player: a glTF/GLB animation (three.js GLTFLoader + AnimationMixer) played
// in sync with its music. Used by the web page of `gcdance serve` (app.js) and by the offline
// `.html` files of `Dance.save` (standalone.js).
//
// The clock is the <audio> element: every frame the animation is posed at the audio's current
// time, so play, pause, seeking from the timeline, buffering stalls and seeking from outside
// (media keys) can never let the two drift apart. Without music (or where the audio has ended
// before the dance, or failed to decode) a wall clock takes over from the same time.
//
// For tests and embedding, the player exposes its state: `time` (the clock), `mixerTime` and
// `actionTime` (where the animation is posed), `audioTime`, `playing`, `duration`,
// `renderedFrames` and `lastFrame` ({pose, audio, time} when the last picture was drawn).

import * as THREE from 'three';
import { OrbitControls } from 'three/addons/controls/OrbitControls.js';
import { GLTFLoader } from 'three/addons/loaders/GLTFLoader.js';

import './player.css';

const ICON_PLAY = '<svg viewBox="0 0 24 24" aria-hidden="true"><path d="M7 4.5v15l13-7.5z"/></svg>';
const ICON_PAUSE =
  '<svg viewBox="0 0 24 24" aria-hidden="true"><path d="M6 4.5h4.5v15H6zM13.5 4.5H18v15h-4.5z"/></svg>';
const ICON_VIEW =
  '<svg viewBox="0 0 24 24" aria-hidden="true"><path d="M12 5a7 7 0 1 0 6.9 8.2h-2.1A5 5 0 1 1 ' +
  '12 7c1.4 0 2.6.6 3.5 1.5L13 11h7V4l-2.1 2.1A7 7 0 0 0 12 5z"/></svg>';
const ICON_FOLLOW =
  '<svg viewBox="0 0 24 24" aria-hidden="true"><path d="M12 8a4 4 0 1 1 0 8 4 4 0 0 1 0-8zm-1-6h2v4h-2zm0 ' +
  '16h2v4h-2zM2 11h4v2H2zm16 0h4v2h-4z"/></svg>';

// Longest stretch (seconds) the frame clock may run ahead of an audio time that has not moved:
// some browsers update currentTime only every few tens of milliseconds, and interpolating over
// that keeps the motion smooth without ever drifting from the music by more than this.
const MAX_AUDIO_EXTRAPOLATION = 0.1;

/** "m:ss.s" for a time in seconds. */
export function formatTime(seconds) {
  const s = Math.max(0, Number.isFinite(seconds) ? seconds : 0);
  const m = Math.floor(s / 60);
  const rest = s - 60 * m;
  return `${m}:${rest < 10 ? '0' : ''}${rest.toFixed(1)}`;
}

/** Bytes of a base64 string (whitespace ignored). */
export function base64ToBytes(text) {
  const bin = atob(text.replace(/\s+/g, ''));
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i += 1) out[i] = bin.charCodeAt(i);
  return out;
}

function el(tag, className, attrs = {}) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  return node;
}

function webglAvailable() {
  try {
    const canvas = document.createElement('canvas');
    return Boolean(canvas.getContext('webgl2'));
  } catch {
    return false;
  }
}

export class DancePlayer {
  /**
   * @param {HTMLElement} container  element the player fills (its size sets the canvas size)
   * @param {{onError?: (message: string) => void}} [options]
   */
  constructor(container, options = {}) {
    this.container = container;
    this.onError = options.onError || null;
    this.duration = 0;
    this.renderedFrames = 0;
    this.lastFrame = null;
    this._playing = false;
    this._mode = 'wall'; // which clock drives the time: 'audio' or 'wall'
    this._wallStart = 0; // performance.now()/1000 minus the time, while the wall clock runs
    this._pausedAt = 0; // the time while paused
    this._audioOffset = 0; // seconds into the audio file where the dance starts
    this._audioEnd = 0; // dance time at which the audio runs out
    this._audioFailed = false;
    this._lastAudio = -1;
    this._lastAudioWall = 0;
    this._scrubResume = false;
    this._follow = false;
    this._viewMoved = false;
    this._dirty = true;
    this._disposed = false;
    this._raf = 0;
    this.mixer = null;
    this.action = null;
    this._buildDom();
    this._audio = el('audio', 'gcd-audio', { preload: 'auto' });
    this.root.appendChild(this._audio);
    this._wireAudio();
    this._webgl = webglAvailable();
    if (this._webgl) this._buildScene();
    else {
      this._message(
        'This browser cannot show 3D graphics (WebGL 2 is off or unsupported). Turn on ' +
          'hardware acceleration or use a current Chrome, Edge, Firefox or Safari.',
        true,
      );
    }
    this._tick = this._tick.bind(this);
    this._raf = requestAnimationFrame(this._tick);
  }

  // ------------------------------------------------------------------------------------ DOM
  _buildDom() {
    const root = el('div', 'gcd-player', { tabindex: '0' });
    const stage = el('div', 'gcd-stage');
    const overlay = el('button', 'gcd-big-play', { type: 'button', 'aria-label': 'Play' });
    overlay.innerHTML = ICON_PLAY;
    const message = el('div', 'gcd-message', { role: 'status' });
    const note = el('div', 'gcd-note');
    stage.append(overlay, message, note);

    const bar = el('div', 'gcd-bar');
    const play = el('button', 'gcd-btn gcd-play', { type: 'button', 'aria-label': 'Play' });
    play.innerHTML = ICON_PLAY;
    const timeline = el('input', 'gcd-timeline', {
      type: 'range', min: '0', max: '0', step: 'any', value: '0', 'aria-label': 'Timeline',
    });
    const time = el('span', 'gcd-time', { 'aria-live': 'off' });
    time.textContent = `${formatTime(0)} / ${formatTime(0)}`;
    const follow = el('button', 'gcd-btn gcd-follow', {
      type: 'button', 'aria-pressed': 'false', title: 'Camera follows the dancer',
      'aria-label': 'Follow the dancer',
    });
    follow.innerHTML = ICON_FOLLOW;
    const view = el('button', 'gcd-btn gcd-reset-view', {
      type: 'button', title: 'Reset the view', 'aria-label': 'Reset the view',
    });
    view.innerHTML = ICON_VIEW;
    bar.append(play, timeline, time, follow, view);
    root.append(stage, bar);
    this.container.appendChild(root);
    Object.assign(this, { root, stage, bar });
    this._ui = { overlay, message, note, play, timeline, time, follow, view };
    this._setControlsEnabled(false);

    overlay.addEventListener('click', () => this.toggle());
    play.addEventListener('click', () => this.toggle());
    view.addEventListener('click', () => this.resetView());
    follow.addEventListener('click', () => this.setFollow(!this._follow));
    // Scrubbing pauses the music while the thumb moves and resumes where it is let go, also
    // when the thumb was only pressed (no 'change' then) or let go outside the slider.
    timeline.addEventListener('pointerdown', () => {
      if (!this._playing) return;
      this._scrubResume = true;
      this.pause();
      const release = () => {
        window.removeEventListener('pointerup', release, true);
        window.removeEventListener('pointercancel', release, true);
        if (!this._scrubResume) return;
        this._scrubResume = false;
        this.seek(Number(timeline.value));
        this.play();
      };
      window.addEventListener('pointerup', release, true);
      window.addEventListener('pointercancel', release, true);
    });
    timeline.addEventListener('input', () => this.seek(Number(timeline.value)));
    timeline.addEventListener('change', () => this.seek(Number(timeline.value)));
    root.addEventListener('keydown', (ev) => this._onKey(ev));
  }

  _onKey(ev) {
    if (!this.duration || ev.altKey || ev.ctrlKey || ev.metaKey) return;
    const target = ev.target;
    const onSlider = target === this._ui.timeline;
    if (ev.key === ' ' || ev.key === 'k') {
      if (target instanceof HTMLButtonElement && ev.key === ' ') return; // the button's own click
      ev.preventDefault();
      this.toggle();
    } else if (!onSlider && (ev.key === 'ArrowLeft' || ev.key === 'ArrowRight')) {
      ev.preventDefault();
      const step = ev.shiftKey ? 0.1 : 2;
      this.seek(this.time + (ev.key === 'ArrowLeft' ? -step : step));
    } else if (!onSlider && ev.key === 'Home') {
      ev.preventDefault();
      this.seek(0);
    }
  }

  _setControlsEnabled(on) {
    for (const k of ['play', 'timeline', 'follow', 'view']) this._ui[k].disabled = !on;
    this._ui.overlay.hidden = !on;
  }

  _message(text, isError = false) {
    const m = this._ui.message;
    m.textContent = text || '';
    m.classList.toggle('gcd-error', Boolean(isError));
    m.hidden = !text;
    if (isError && text && this.onError) this.onError(text);
  }

  /** A short line under the figure (e.g. "no music"); empty hides it. */
  setNote(text) {
    this._ui.note.textContent = text || '';
    this._ui.note.hidden = !text;
  }

  // ---------------------------------------------------------------------------------- scene
  _buildScene() {
    const renderer = new THREE.WebGLRenderer({ antialias: true, alpha: false });
    renderer.setPixelRatio(Math.min(window.devicePixelRatio || 1, 2));
    renderer.shadowMap.enabled = true;
    renderer.shadowMap.type = THREE.PCFShadowMap;
    renderer.domElement.className = 'gcd-canvas';
    this.stage.prepend(renderer.domElement);
    this.renderer = renderer;

    const scene = new THREE.Scene();
    scene.background = new THREE.Color(0x1d2129);
    scene.fog = new THREE.Fog(0x1d2129, 12, 40);
    this.scene = scene;

    this.camera = new THREE.PerspectiveCamera(40, 1, 0.05, 200);
    this.camera.position.set(2.4, 1.6, 4.2);
    this.controls = new OrbitControls(this.camera, renderer.domElement);
    this.controls.enableDamping = true;
    this.controls.dampingFactor = 0.12;
    this.controls.target.set(0, 0.9, 0);
    this.controls.minDistance = 0.5;
    this.controls.maxDistance = 40;
    this.controls.maxPolarAngle = Math.PI * 0.495; // never below the floor
    this.controls.addEventListener('change', () => {
      this._dirty = true;
    });
    // Until the viewer moves the camera, a resized view is framed anew.
    this.controls.addEventListener('start', () => {
      this._viewMoved = true;
    });

    scene.add(new THREE.HemisphereLight(0xdde6ff, 0x2a2622, 1.4));
    const sun = new THREE.DirectionalLight(0xffffff, 2.2);
    sun.position.set(3, 6, 4);
    sun.castShadow = true;
    sun.shadow.mapSize.set(1024, 1024);
    sun.shadow.bias = -0.0005;
    scene.add(sun, sun.target);
    this.sun = sun;

    this.floor = new THREE.Group();
    scene.add(this.floor);
    this._buildFloor(new THREE.Vector3(0, 0, 0), 8);

    this._resize = new ResizeObserver(() => this._onResize());
    this._resize.observe(this.stage);
    this._onResize();
    renderer.domElement.addEventListener('webglcontextlost', (ev) => {
      ev.preventDefault();
      this._message('The 3D view lost its graphics context; reload the page to get it back.', true);
    });
  }

  _buildFloor(center, size) {
    for (const child of [...this.floor.children]) {
      this.floor.remove(child);
      child.geometry?.dispose();
      child.material?.dispose();
    }
    const cells = Math.round(size / 0.5);
    const grid = new THREE.GridHelper(size, cells, 0x8a93a6, 0x4a5160);
    grid.material.transparent = true;
    grid.material.opacity = 0.85;
    grid.position.set(center.x, 0.001, center.z);
    const ground = new THREE.Mesh(
      new THREE.PlaneGeometry(size * 4, size * 4),
      new THREE.MeshStandardMaterial({ color: 0x262b35, roughness: 1, metalness: 0 }),
    );
    ground.rotation.x = -Math.PI / 2;
    ground.position.set(center.x, 0, center.z);
    ground.receiveShadow = true;
    this.floor.add(ground, grid);
  }

  _onResize() {
    if (!this.renderer) return;
    const w = Math.max(1, this.stage.clientWidth);
    const h = Math.max(1, this.stage.clientHeight);
    this.renderer.setSize(w, h, false);
    this.camera.aspect = w / h;
    this.camera.updateProjectionMatrix();
    if (!this._viewMoved && !this._follow) this.resetView();
    this._dirty = true;
  }

  // ----------------------------------------------------------------------------------- load
  /**
   * Load a dance.
   * @param {object} source
   * @param {ArrayBuffer|Uint8Array} source.glb  the .glb file (binary glTF) with one animation
   * @param {string|null} [source.audio]  URL of the music (object/blob URL, file URL); null: silent
   * @param {number} [source.audioOffset]  seconds into the audio where the dance starts
   * @param {number} [source.duration]  the dance's length in seconds (default: the clip's)
   */
  async load({ glb, audio = null, audioOffset = 0, duration = null }) {
    this.pause();
    this._unload();
    this._setControlsEnabled(false);
    if (!this._webgl) throw new Error('WebGL 2 is not available in this browser');
    this._message('Loading the dance…');
    const data = glb instanceof Uint8Array
      ? glb.buffer.slice(glb.byteOffset, glb.byteOffset + glb.byteLength) : glb;
    let gltf;
    try {
      gltf = await new GLTFLoader().parseAsync(data, '');
    } catch (err) {
      const text = `The dance file could not be read (${err?.message || err}).`;
      this._message(text, true);
      throw new Error(text);
    }
    if (this._disposed) return;
    const clip = gltf.animations[0];
    if (!clip) {
      const text = 'The dance file holds no animation.';
      this._message(text, true);
      throw new Error(text);
    }
    const model = gltf.scene;
    model.traverse((o) => {
      if (o.isMesh) {
        o.castShadow = true;
        o.frustumCulled = false; // skinned: the bind-pose bounds do not follow the dance
      }
    });
    this.scene.add(model);
    this.model = model;
    this.mixer = new THREE.AnimationMixer(model);
    this.action = this.mixer.clipAction(clip);
    this.action.setLoop(THREE.LoopOnce, 1);
    this.action.clampWhenFinished = true;
    this.action.play();
    this.clip = clip;
    this.duration = Number.isFinite(duration) && duration > 0 ? duration : clip.duration;
    this._points = this._trackedObjects(model);
    this._sticks = this._hasMesh(model) ? null : this._buildSticks(model);
    this._frameScene();

    this._audioOffset = Math.max(0, Number(audioOffset) || 0);
    this._audioFailed = false;
    this._audioEnd = audio ? this.duration : 0;
    if (audio) {
      this._audio.src = audio;
      this._audio.load();
      this.setNote('');
    } else {
      this._audio.removeAttribute('src');
      this._audio.load();
      this.setNote('No music with this dance: it plays silently.');
    }
    this._ui.timeline.max = String(this.duration);
    this._pausedAt = 0;
    this._applyTime(0);
    this._message('');
    this._setControlsEnabled(true);
    this._updateUi();
  }

  _unload() {
    if (this.model) {
      this.scene.remove(this.model);
      this.model.traverse((o) => {
        o.geometry?.dispose();
        for (const m of [].concat(o.material || [])) m.dispose();
      });
    }
    if (this._sticks) {
      this.scene.remove(this._sticks);
      this._sticks.geometry.dispose();
      this._sticks.material.dispose();
    }
    this.mixer?.stopAllAction();
    this.model = this.mixer = this.action = this.clip = this._sticks = null;
    this.duration = 0;
  }

  _hasMesh(model) {
    let found = false;
    model.traverse((o) => {
      if (o.isMesh || o.isLine || o.isPoints) found = true;
    });
    return found;
  }

  /** The joints whose positions frame the camera: bones of a skin, or else every node. */
  _trackedObjects(model) {
    const bones = [];
    model.traverse((o) => {
      if (o.isBone) bones.push(o);
    });
    if (bones.length) return bones;
    const nodes = [];
    model.traverse((o) => {
      if (o !== model) nodes.push(o);
    });
    return nodes;
  }

  /** A glTF without meshes (a bare node hierarchy) is drawn as lines between its nodes. */
  _buildSticks(model) {
    const pairs = [];
    model.traverse((o) => {
      if (o !== model && o.parent && o.parent !== model) pairs.push([o.parent, o]);
    });
    const geometry = new THREE.BufferGeometry();
    geometry.setAttribute('position', new THREE.BufferAttribute(new Float32Array(pairs.length * 6), 3));
    const lines = new THREE.LineSegments(
      geometry, new THREE.LineBasicMaterial({ color: 0xf2c14e }),
    );
    lines.frustumCulled = false;
    lines.userData.pairs = pairs;
    this.scene.add(lines);
    return lines;
  }

  _updateSticks() {
    if (!this._sticks) return;
    const pos = this._sticks.geometry.attributes.position;
    const v = new THREE.Vector3();
    this._sticks.userData.pairs.forEach(([a, b], i) => {
      a.getWorldPosition(v);
      pos.setXYZ(2 * i, v.x, v.y, v.z);
      b.getWorldPosition(v);
      pos.setXYZ(2 * i + 1, v.x, v.y, v.z);
    });
    pos.needsUpdate = true;
  }

  /** Sample the dance to find the space it uses: the camera, floor and shadow fit it. */
  _frameScene() {
    const box = new THREE.Box3();
    const v = new THREE.Vector3();
    const samples = 48;
    for (let i = 0; i <= samples; i += 1) {
      this._applyTime((this.duration * i) / samples, false);
      this.model.updateMatrixWorld(true);
      for (const o of this._points) box.expandByPoint(o.getWorldPosition(v));
    }
    if (box.isEmpty()) box.set(new THREE.Vector3(-0.5, 0, -0.5), new THREE.Vector3(0.5, 1.8, 0.5));
    const center = box.getCenter(new THREE.Vector3());
    const size = box.getSize(new THREE.Vector3());
    const height = Math.max(size.y, box.max.y, 1.0);
    const span = Math.max(size.x, size.z, 1.0);
    this._home = {
      target: new THREE.Vector3(center.x, Math.max(0.5, box.max.y * 0.5), center.z),
      height,
      span,
    };
    this._buildFloor(new THREE.Vector3(Math.round(center.x), 0, Math.round(center.z)),
      Math.max(8, 2 * Math.ceil(span + 2)));
    const s = this.sun;
    s.position.set(center.x + 3, 6 + height, center.z + 4);
    s.target.position.set(center.x, 0, center.z);
    const r = span / 2 + 1.5;
    Object.assign(s.shadow.camera, { left: -r, right: r, top: r, bottom: -r, near: 0.5, far: 30 });
    s.shadow.camera.updateProjectionMatrix();
    this.resetView();
  }

  /** Draw the scene again on the next frame (it is drawn on its own only when it changes). */
  requestRender() {
    this._dirty = true;
  }

  /** Put the camera back where it started (front-right of the dance, slightly above), far
   * enough that the figure fills about two thirds of the view's height and the floor it
   * dances on fits across (a narrow, portrait view backs off further). */
  resetView() {
    if (!this._home || !this.camera) return;
    const { target, height, span } = this._home;
    const tanV = Math.tan(THREE.MathUtils.degToRad(this.camera.fov / 2));
    const tanH = tanV * this.camera.aspect;
    const distance = Math.max((1.65 * height) / (2 * tanV), (1.3 * Math.max(span, 1.2)) / (2 * tanH));
    const dir = new THREE.Vector3(0.45, 0.32, 1).normalize();
    this.controls.target.copy(target);
    this.camera.position.copy(target).addScaledVector(dir, distance);
    this.controls.update();
    this._viewMoved = false;
    this._dirty = true;
  }

  /** Keep the orbit target on the dancer's hips (on) or on the middle of the floor (off). */
  setFollow(on) {
    this._follow = Boolean(on);
    this._ui.follow.setAttribute('aria-pressed', String(this._follow));
    this._ui.follow.classList.toggle('gcd-on', this._follow);
    if (!this._follow) this.resetView();
    this._dirty = true;
  }

  _followTarget() {
    if (!this._follow || !this._points?.length) return;
    const hips = this._points[0].getWorldPosition(new THREE.Vector3());
    const t = this.controls.target;
    const dx = hips.x - t.x;
    const dz = hips.z - t.z;
    if (Math.abs(dx) + Math.abs(dz) < 1e-4) return;
    const k = 0.15; // smoothing: the view glides instead of shaking with every step
    t.x += dx * k;
    t.z += dz * k;
    this.camera.position.x += dx * k;
    this.camera.position.z += dz * k;
    this._dirty = true;
  }

  // ---------------------------------------------------------------------------------- audio
  _wireAudio() {
    const a = this._audio;
    a.addEventListener('error', () => {
      if (!a.getAttribute('src')) return;
      this._audioFailed = true;
      this._audioEnd = 0;
      this.setNote('The music could not be played in this browser; the dance plays silently.');
      if (this._playing && this._mode === 'audio') this._startWall(this.time);
    });
    a.addEventListener('loadedmetadata', () => {
      // Music shorter than the dance: the wall clock carries on where it ends.
      if (Number.isFinite(a.duration)) {
        this._audioEnd = Math.min(this.duration, Math.max(0, a.duration - this._audioOffset));
      }
    });
    // Paused or played from outside (media keys, the OS): the player follows. Media events
    // arrive later than the calls that caused them, so the element's state now decides.
    a.addEventListener('pause', () => {
      if (this._playing && this._mode === 'audio' && a.paused && !a.ended) this.pause();
    });
    a.addEventListener('play', () => {
      if (!this._playing && !a.paused) this.play();
    });
  }

  _hasAudio() {
    return Boolean(this._audio.getAttribute('src')) && !this._audioFailed;
  }

  _audioClock() {
    const a = this._audio;
    const now = performance.now() / 1000;
    const at = a.currentTime;
    if (at !== this._lastAudio || a.paused || a.seeking || a.readyState < 3) {
      this._lastAudio = at;
      this._lastAudioWall = now;
      return at - this._audioOffset;
    }
    return at - this._audioOffset + Math.min(now - this._lastAudioWall, MAX_AUDIO_EXTRAPOLATION);
  }

  _startWall(t) {
    this._mode = 'wall';
    this._wallStart = performance.now() / 1000 - t;
    if (!this._audio.paused) this._pauseAudio();
  }

  _pauseAudio() {
    this._audio.pause();
  }

  // --------------------------------------------------------------------------------- control
  get playing() {
    return this._playing;
  }

  /** The player's clock (seconds into the dance). */
  get time() {
    if (!this._playing) return this._pausedAt;
    const t = this._mode === 'audio' ? this._audioClock() : performance.now() / 1000 - this._wallStart;
    return Math.min(Math.max(t, 0), this.duration);
  }

  /** Seconds into the dance the audio element is at (null without music). */
  get audioTime() {
    return this._hasAudio() ? this._audio.currentTime - this._audioOffset : null;
  }

  /** The animation mixer's time, and the time the clip is posed at. */
  get mixerTime() {
    return this.mixer ? this.mixer.time : 0;
  }

  get actionTime() {
    return this.action ? this.action.time : 0;
  }

  /** The <audio> element (for tests and for pages that want to show its state). */
  get audioElement() {
    return this._audio;
  }

  async play() {
    if (!this.action || this._playing) return;
    let t = this._pausedAt;
    if (t >= this.duration - 1e-3) t = 0; // at the end: play from the start
    this._playing = true;
    this._pausedAt = t;
    if (this._hasAudio() && t < this._audioEnd - 1e-3) {
      this._mode = 'audio';
      this._audio.currentTime = this._audioOffset + t;
      this._lastAudio = -1;
      try {
        await this._audio.play();
      } catch (err) {
        if (err?.name === 'NotAllowedError') {
          // Autoplay rules: sound needs a click. Stay paused and say so.
          this._playing = false;
          this._message('Click play to start the dance with its music.');
          this._updateUi();
          return;
        }
        if (err?.name !== 'AbortError') {
          this._audioFailed = true;
          this.setNote('The music could not be played in this browser; the dance plays silently.');
          if (this._playing) this._startWall(t);
        }
      }
    } else {
      this._startWall(t);
    }
    this._message('');
    this._updateUi();
  }

  pause() {
    if (!this._playing) return;
    const t = this.time;
    this._playing = false;
    this._pausedAt = t;
    this._pauseAudio();
    // The audio decoder may be a little ahead of what was read; the pose and the audio element
    // are put on the same time so a resume starts exactly where the picture stopped.
    if (this._hasAudio() && t < this._audioEnd) this._audio.currentTime = this._audioOffset + t;
    this._applyTime(t);
    this._updateUi();
  }

  toggle() {
    if (this._playing) this.pause();
    else this.play();
  }

  /** Jump to `t` seconds; the music and the pose move together, playing or paused. */
  seek(t) {
    if (!this.action) return;
    const target = Math.min(Math.max(Number(t) || 0, 0), this.duration);
    if (this._playing) {
      if (this._hasAudio() && target < this._audioEnd - 1e-3) {
        this._audio.currentTime = this._audioOffset + target;
        this._lastAudio = -1;
        if (this._mode !== 'audio') {
          this._mode = 'audio';
          this._audio.play().catch(() => {}); // a failure shows through the 'error' event
        }
      } else {
        this._startWall(target);
      }
    } else {
      this._pausedAt = target;
      if (this._hasAudio()) this._audio.currentTime = this._audioOffset + Math.min(target, this._audioEnd);
    }
    this._applyTime(target);
    this._updateUi();
  }

  _applyTime(t, render = true) {
    if (!this.mixer) return;
    // A LoopOnce action pauses itself at the end; reset so any time can be shown again.
    this.action.reset();
    this.mixer.setTime(Math.min(t, this.clip.duration));
    if (render) this._dirty = true;
  }

  _updateUi() {
    const ui = this._ui;
    const icon = this._playing ? ICON_PAUSE : ICON_PLAY;
    const label = this._playing ? 'Pause' : 'Play';
    if (ui.play.dataset.state !== label) {
      ui.play.innerHTML = icon;
      ui.play.dataset.state = label;
      ui.play.setAttribute('aria-label', label);
    }
    ui.overlay.hidden = this._playing || !this.action;
    const t = this.time;
    if (document.activeElement !== ui.timeline || !this._scrubResume) ui.timeline.value = String(t);
    ui.timeline.style.setProperty('--gcd-progress', `${this.duration ? (100 * t) / this.duration : 0}%`);
    ui.time.textContent = `${formatTime(t)} / ${formatTime(this.duration)}`;
  }

  _tick() {
    if (this._disposed) return;
    this._raf = requestAnimationFrame(this._tick);
    if (this._playing) {
      if (this._mode === 'audio' && (this._audio.ended || this._audioClock() >= this._audioEnd)) {
        // The music ran out before the dance: the wall clock takes over from there.
        if (this._audioEnd < this.duration - 1e-3) this._startWall(this._audioEnd);
      }
      const t = this.time;
      this._applyTime(t);
      if (t >= this.duration) this.pause();
      this._updateUi();
    }
    if (!this.renderer) return;
    this._followTarget();
    this.controls.update();
    if (this._dirty || this._playing) {
      this._dirty = false;
      if (this.model) this.model.updateMatrixWorld(true);
      this._updateSticks();
      this.renderer.render(this.scene, this.camera);
      this.renderedFrames += 1;
      // What this picture shows and where the music was when it was drawn (sync checks).
      this.lastFrame = { pose: this.mixerTime, audio: this.audioTime, time: this.time };
    }
  }

  dispose() {
    this._disposed = true;
    cancelAnimationFrame(this._raf);
    this.pause();
    this._unload();
    this._resize?.disconnect();
    this.controls?.dispose();
    this.renderer?.dispose();
    this._audio.removeAttribute('src');
    this._audio.load();
    this.root.remove();
  }
}
