// Measurement side of the browser sync harness page: samples the <video> element's clock
// and presented frames against one wall clock shared by every page of the browser
// (performance.timeOrigin + performance.now(), epoch milliseconds), records what the client
// did and when, and gives the Python driver (run.py) a small API: window.harness.
(() => {
  'use strict';
  const video = document.querySelector('video');
  const client = window.OWPClient;
  const wall = () => performance.timeOrigin + performance.now();
  const LOG_CAP = 5000;
  const H = { samples: [], frames: [], marks: [], events: [], log: [] };

  // The media clock every 50 ms: [wall ms, currentTime, paused, playbackRate, readyState, seeking].
  setInterval(() => {
    H.samples.push([wall(), video.currentTime, video.paused ? 1 : 0, video.playbackRate,
      video.readyState, video.seeking ? 1 : 0]);
  }, 50);

  // Every presented frame: [wall ms of presentation, mediaTime, presentedFrames].
  if (typeof video.requestVideoFrameCallback === 'function') {
    const onFrame = (now, meta) => {
      H.frames.push([performance.timeOrigin + meta.presentationTime, meta.mediaTime, meta.presentedFrames]);
      video.requestVideoFrameCallback(onFrame);
    };
    video.requestVideoFrameCallback(onFrame);
  }

  for (const name of ['waiting', 'playing', 'play', 'pause', 'seeking', 'seeked', 'stalled', 'canplay', 'ended', 'error']) {
    video.addEventListener(name, () => H.events.push([wall(), name, video.currentTime, video.readyState]));
  }

  client.hooks.onCommandApplied = (why, position) => H.marks.push([wall(), why, position]);
  client.hooks.onLog = (what, data) => { if (H.log.length < LOG_CAP) H.log.push([wall(), what, data]); };

  const status = document.getElementById('status');
  setInterval(() => {
    const s = client.state;
    status.textContent = `${client.behaviour} ${client.role}${s.isHost ? ' (host)' : ''} room=${s.roomId.slice(0, 8)} `
      + `t=${video.currentTime.toFixed(3)} rate=${video.playbackRate.toFixed(3)} ${video.paused ? 'paused' : 'playing'} `
      + `offset=${s.offsetMs.toFixed(1)}ms`;
  }, 250);

  const mediaReady = () => new Promise((resolve, reject) => {
    const deadline = Date.now() + 15000;
    const tick = () => {
      if (video.error) { reject(new Error('video error ' + video.error.code)); return; }
      if (video.readyState >= 4) { resolve(); return; }
      if (Date.now() > deadline) { reject(new Error('video not ready (readyState ' + video.readyState + ')')); return; }
      setTimeout(tick, 20);
    };
    tick();
  });

  window.harness = {
    wall,
    init: async () => {
      await mediaReady();
      await Promise.race([client.connect(), new Promise((resolve, reject) => setTimeout(
        () => reject(new Error('no client_hello within 5 s')), 5000))]);
      return client.state.clientId;
    },
    createRoom: () => client.createRoom(),
    // Resolves, once room_state is in, to the wall time at which join_room was sent.
    joinRoom: async (id) => {
      const t = wall();
      H.marks.push([t, 'join_room', video.currentTime]);
      await client.joinRoom(id);
      return t;
    },
    waitReadySent: () => client.waitReadySent(),
    // The user's click on play, and a drag of the seek bar: the host's own player acts at once.
    clickPlay: () => {
      const t = wall();
      H.marks.push([t, 'click_play', video.currentTime]);
      const p = video.play();
      if (p && p.catch) p.catch((err) => H.log.push([wall(), 'play_failed', { error: String(err) }]));
      return t;
    },
    seekTo: (position) => {
      const t = wall();
      H.marks.push([t, 'user_seek', video.currentTime]);
      video.currentTime = position;
      return t;
    },
    now: () => ({ wall: wall(), currentTime: video.currentTime, paused: video.paused }),
    dump: () => Object.assign({}, H, {
      role: client.role, behaviour: client.behaviour, stats: client.stats,
      offsetMs: client.state.offsetMs, clientId: client.state.clientId, isHost: client.state.isHost,
      roomId: client.state.roomId,
      rvfc: typeof video.requestVideoFrameCallback === 'function',
      visibility: document.visibilityState,
    }),
  };
})();
