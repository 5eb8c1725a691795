// Load a gcdance .glb with three.js's GLTFLoader and play it with an AnimationMixer (what the
// .html player does), then print JSON: every bone's world position at every key (frame / fps),
// halfway between keys, and the skinned mesh's vertices (three's CPU skinning, the same maths
// as its shader) at one frame. tests/test_gltf.py compares these with Dance.joints().
//
//   node tools/threejs_gltf_check.mjs THREE_DIR DANCE.glb FPS [VERTEX_FRAME] > out.json
//
// THREE_DIR is an installed `three` package (e.g. web/node_modules/three); it is imported by
// path, so this script needs no package.json of its own.
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const [threeDir, file, fpsArg, vertexFrameArg] = process.argv.slice(2);
if (!threeDir || !file || !fpsArg) {
  console.error('usage: node threejs_gltf_check.mjs THREE_DIR DANCE.glb FPS [VERTEX_FRAME]');
  process.exit(2);
}
const THREE = await import(pathToFileURL(path.join(threeDir, 'build', 'three.module.js')).href);
const { GLTFLoader } = await import(
  pathToFileURL(path.join(threeDir, 'examples', 'jsm', 'loaders', 'GLTFLoader.js')).href);

const bytes = fs.readFileSync(file);
const data = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
const fps = Number(fpsArg);
const vertexFrame = Number(vertexFrameArg ?? 0);

new GLTFLoader().parse(data, '', (gltf) => {
  const clip = gltf.animations[0];
  const mixer = new THREE.AnimationMixer(gltf.scene);
  const action = mixer.clipAction(clip);
  // The clip lasts (frames - 1) / fps; LoopRepeat would wrap its last key back to the first.
  action.setLoop(THREE.LoopOnce);
  action.clampWhenFinished = true;
  action.play();
  let mesh = null;
  gltf.scene.traverse((o) => { if (o.isSkinnedMesh) mesh = o; });
  if (mesh === null) throw new Error('no skinned mesh in the scene');
  const bones = mesh.skeleton.bones;
  const v = new THREE.Vector3();
  const pose = (t) => {
    mixer.setTime(t);
    gltf.scene.updateMatrixWorld(true);
    return bones.map((b) => v.setFromMatrixPosition(b.matrixWorld).toArray());
  };
  const keys = Math.round(clip.duration * fps) + 1;
  const out = {
    three: THREE.REVISION, names: bones.map((b) => b.name), duration: clip.duration,
    tracks: clip.tracks.length, userData: gltf.scene.userData, frames: [], half: [],
    vertexFrame, vertices: [],
  };
  for (let k = 0; k < keys; k++) out.frames.push(pose(k / fps));
  for (let k = 0; k + 1 < keys; k++) out.half.push(pose((k + 0.5) / fps));
  pose(vertexFrame / fps);
  const count = mesh.geometry.attributes.position.count;
  for (let i = 0; i < count; i++) {
    mesh.getVertexPosition(i, v);
    out.vertices.push(v.applyMatrix4(mesh.matrixWorld).toArray());
  }
  process.stdout.write(JSON.stringify(out));
}, (err) => { console.error(String(err)); process.exit(1); });
