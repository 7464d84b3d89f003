// A stand-in for the OpenWatchParty Jellyfin web client, written for the browser sync
// harness. It speaks the session protocol over a real WebSocket and drives a real <video>,
// reproducing the sync behaviour of the two upstream client generations:
//
//   behaviour=jan      clients/jellyfin-web/{ws,playback,utils,state,app}.js (January 2026)
//   behaviour=modular  src/clients/jellyfin-web/{ws/connection,ws/handlers/*,playback/*,
//                      utils/time,state}.js (the later modular client)
//
// Only what moves the video is reproduced (clock sync, commands, state reports, drift
// correction, the ready gate, and, with reconnect=1, the reconnect both generations do on
// any close: back-off 1, 2, 4 … 30 s, `auth` again, a ping, and no rejoin: the client still
// thinks it is in its room); UI, chat and Jellyfin navigation are not.
// Page parameters: ?role=host|guest&behaviour=jan|modular&ws=ws://…/ws&name=…&media=<32 hex>
//   [&token=<JWT>&user=<user id>] (JWT mode: `auth` carries the token, name and id, as
//   Jellyfin's plugin page does) [&reconnect=1]
(() => {
  'use strict';

  const params = new URLSearchParams(location.search);
  const ROLE = params.get('role') === 'host' ? 'host' : 'guest';
  const GEN = params.get('behaviour') === 'modular' ? 'modular' : 'jan';
  const WS_URL = params.get('ws');
  const USER_NAME = params.get('name') || ROLE;
  const MEDIA_ID = params.get('media') || '00000000000000000000000000000000';
  const TOKEN = params.get('token') || '';
  const USER_ID = params.get('user') || '';
  const RECONNECT = params.get('reconnect') === '1';

  // Numbers as the upstream state.js of each generation has them.
  const COMMON = {
    seekThreshold: 1.0,        // SEEK_THRESHOLD (s)
    stateUpdateMs: 1000,       // STATE_UPDATE_MS
    leadMs: 300,               // SYNC_LEAD_MS, added by adjustedPosition()
    deadzone: 0.04,            // DRIFT_DEADZONE_SEC
    hardSeek: 2.0,             // DRIFT_SOFT_MAX_SEC
    loopMs: 500,               // SYNC_LOOP_MS
    suppressMs: 2000,          // SUPPRESS_MS
    commandCooldownMs: 2000,   // the literal 2000 after play/seek/resume
    joinCooldownMs: 8000,      // INITIAL_SYNC_COOLDOWN_MS
    joinMaxMs: 30000,          // INITIAL_SYNC_MAX_MS
    joinDoneDrift: 0.5,        // INITIAL_SYNC_DRIFT_THRESHOLD
    joinMaxDrift: 10,          // INITIAL_SYNC_MAX_DRIFT
    clockSamples: 8,           // TIME_SYNC_MAX_SAMPLES
    clockAlpha: 0.4,           // TIME_SYNC_EMA_ALPHA
  };
  const TUNING = {
    jan: Object.assign({}, COMMON, {
      rateMin: 0.85, rateMax: 2.0, gain: 0.50,   // PLAYBACK_RATE_MIN/MAX, DRIFT_GAIN
      pingFastMs: 10000, pingFastCount: 0, pingSlowMs: 10000,   // PING_MS
    }),
    modular: Object.assign({}, COMMON, {
      rateMin: 0.90, rateMax: 1.15, gain: 0.15,
      pingFastMs: 2000, pingFastCount: 5, pingSlowMs: 30000,    // PING_INIT/STABLE_MS, _AFTER
      mediaPollMs: 100,                                         // MEDIA_READY_POLL_MS
    }),
  };
  const K = TUNING[GEN];

  const video = document.querySelector('video');
  const hooks = { onCommandApplied: () => {}, onLog: () => {} };
  const stats = { pongs: 0, pongsDiscarded: 0, sent: {}, received: {} };

  const s = {
    ws: null, clientId: '', roomId: '', inRoom: false, isHost: false, roomHostId: '',
    offsetMs: 0, hasClock: false, clock: [], goodPongs: 0, pingTimer: null,
    syncTs: 0, syncPos: 0, syncPlay: '',          // the baseline the drift loop follows
    cooldownUntil: 0, initialSync: false, initialSyncUntil: 0, initialTarget: null,
    pendingTimer: null, pendingPlayUntil: 0, attempt: 0,
    syncing: false, syncingTimer: null, suppressUntil: 0,
    buffering: false, readySentFor: '', pendingMediaId: '', roomWaiting: false,
    lastStateSentAt: 0, lastSeekSentAt: 0, lastSentPosition: 0,
  };

  const nowMs = () => Date.now();
  const serverNow = () => nowMs() + (s.offsetMs || 0);
  const log = (what, data) => hooks.onLog(what, data || {});

  // --- transport -------------------------------------------------------------------------

  const rawSend = (obj) => {
    if (!s.ws || s.ws.readyState !== 1) return;
    stats.sent[obj.type] = (stats.sent[obj.type] || 0) + 1;
    s.ws.send(JSON.stringify(obj));
  };
  const send = (type, payload = {}, room = null) => {
    const msg = { type, room: room || s.roomId, payload, ts: nowMs() };
    if (s.clientId) msg.client = s.clientId;
    rawSend(msg);
    if (type === 'player_event' || type === 'state_update' || type === 'ready') log('send', { type, payload });
  };
  const sendPing = () => rawSend({ type: 'ping', room: s.roomId, payload: { client_ts: nowMs() }, ts: nowMs() });

  const schedulePings = () => {
    if (s.pingTimer) clearInterval(s.pingTimer);
    const every = s.goodPongs >= K.pingFastCount ? K.pingSlowMs : K.pingFastMs;
    s.pingTimer = setInterval(sendPing, every);
  };

  let backoffMs = 1000;
  const connect = () => new Promise((resolve, reject) => {
    const ws = new WebSocket(WS_URL);
    s.ws = ws;
    ws.onopen = () => {
      // Both generations identify themselves (open mode: a name only; JWT: the token, with
      // name and id), then ping at once.
      const payload = TOKEN ? { token: TOKEN, user_name: USER_NAME, user_id: USER_ID } : { user_name: USER_NAME };
      rawSend({ type: 'auth', payload, ts: nowMs() });
      sendPing();
      schedulePings();
      backoffMs = 1000;
    };
    ws.onerror = () => reject(new Error('websocket error'));
    ws.onclose = (e) => {
      log('ws_closed', { code: e.code, reason: e.reason });
      if (!RECONNECT || s.ws !== ws) return;
      const wait = backoffMs;
      backoffMs = Math.min(backoffMs * 2, 30000);
      setTimeout(() => { log('reconnect', { after_ms: wait }); connect().catch(() => {}); }, wait);
    };
    ws.onmessage = (e) => {
      let msg;
      try { msg = JSON.parse(e.data); } catch (err) { return; }
      stats.received[msg.type] = (stats.received[msg.type] || 0) + 1;
      if (GEN === 'modular' && typeof msg.server_ts !== 'number') return;  // its schema check
      // Both generations drop messages for another room once in one (room_state excepted).
      if (s.inRoom && msg.room && msg.room !== s.roomId && msg.type !== 'room_state') return;
      if (msg.type === 'client_hello' && msg.payload && msg.payload.client_id) {
        s.clientId = msg.payload.client_id;
        if (msg.payload.resumed) log('resumed', { client_id: msg.payload.client_id });
        resolve();
      }
      handle(msg);
    };
  });

  const handle = (msg) => {
    if (msg.type !== 'pong' && msg.type !== 'room_list') {
      log('recv', { type: msg.type, server_ts: msg.server_ts, payload: msg.type === 'room_state' || msg.type === 'player_event' || msg.type === 'state_update' ? msg.payload : undefined });
    }
    switch (msg.type) {
      case 'pong': onPong(msg); break;
      case 'room_state': (GEN === 'jan' ? janRoomState : modRoomState)(msg); break;
      case 'player_event': (GEN === 'jan' ? janPlayerEvent : modPlayerEvent)(msg); break;
      case 'state_update': onStateUpdate(msg); break;
      case 'room_closed': s.inRoom = false; s.roomId = ''; break;
      default: break;
    }
  };

  // --- clock (ws.js pong handler / ws handler handlePong; identical in both) ----------------
  // Offset of the lowest-RTT sample of the last 8, smoothed by an EMA; a pong with an RTT of
  // 0 ms (common on loopback with millisecond clocks) is not a sample.

  const onPong = (msg) => {
    if (!msg.payload || !msg.payload.client_ts) return;
    const now = nowMs();
    const rtt = now - msg.payload.client_ts;
    stats.pongs++;
    if (typeof msg.server_ts !== 'number' || !(rtt > 0)) { stats.pongsDiscarded++; return; }
    s.clock.push({ rtt, offset: msg.server_ts + rtt / 2 - now });
    if (s.clock.length > K.clockSamples) s.clock.shift();
    const best = s.clock.reduce((a, b) => (b.rtt < a.rtt ? b : a));
    const before = s.offsetMs;
    s.offsetMs = s.hasClock ? before * (1 - K.clockAlpha) + best.offset * K.clockAlpha : best.offset;
    s.hasClock = true;
    if (GEN === 'modular') {
      // Fast pings until 5 good pongs, then slow; back to fast when the offset jumps > 50 ms.
      const wasFast = s.goodPongs < K.pingFastCount;
      s.goodPongs++;
      if (wasFast && s.goodPongs >= K.pingFastCount) schedulePings();
      if (s.goodPongs >= K.pingFastCount && Math.abs(s.offsetMs - before) > 50) {
        s.goodPongs = 0;
        schedulePings();
      }
    }
  };

  // --- helpers shared by both generations -------------------------------------------------

  // adjustedPosition(): the position projected from serverTs to now, plus SYNC_LEAD_MS.
  const leadPosition = (position, serverTs) => {
    const now = serverNow();
    const ts = typeof serverTs === 'number' ? serverTs : now;
    return position + (Math.max(0, now - ts) + K.leadMs) / 1000;
  };

  // scheduleAt(): one pending timer for the whole client; a new one replaces the old.
  const scheduleAt = (serverTs, fn) => {
    if (s.pendingTimer) { clearTimeout(s.pendingTimer); s.pendingTimer = null; }
    const now = serverNow();
    const delay = Math.max(0, (typeof serverTs === 'number' ? serverTs : now) - now);
    if (delay === 0) { fn(); return; }
    s.pendingTimer = setTimeout(() => { s.pendingTimer = null; fn(); }, delay);
  };

  // startSyncing(): for SUPPRESS_MS the host does not report (and the modular guest does
  // not hold a room pause) while a command is being applied.
  const markSyncing = () => {
    s.syncing = true;
    if (s.syncingTimer) clearTimeout(s.syncingTimer);
    s.syncingTimer = setTimeout(() => { s.syncing = false; s.syncingTimer = null; }, K.suppressMs);
  };
  const shouldSend = () => nowMs() > s.suppressUntil;
  const videoReady = () => video.readyState >= 3;   // isVideoReady()
  const rate1 = () => { if (video.playbackRate !== 1) video.playbackRate = 1; };
  const playVideo = (why) => {
    hooks.onCommandApplied(why, video.currentTime);
    const p = video.play();
    if (p && p.catch) p.catch((err) => log('play_failed', { why, error: String(err) }));
  };

  const clearInitialSync = () => {
    s.initialSync = false; s.initialSyncUntil = 0; s.initialTarget = GEN === 'jan' ? 0 : null;
  };

  // --- the ready gate ---------------------------------------------------------------------

  const notifyReady = (roomId) => {
    if (!s.inRoom || s.roomId !== roomId || s.readySentFor === roomId) return;
    s.readySentFor = roomId;
    send('ready', { room: roomId, media_id: MEDIA_ID });
  };

  // Jan (playback.js watchReady): ready as soon as the video has data (readyState >= 2).
  const janWatchReady = () => {
    if (video.readyState >= 2) { notifyReady(s.roomId); return; }
    const once = () => {
      video.removeEventListener('canplay', once);
      video.removeEventListener('loadeddata', once);
      notifyReady(s.roomId);
    };
    video.addEventListener('canplay', once);
    video.addEventListener('loadeddata', once);
  };

  // Modular (playback/sync.js watchReady): checks at once, then every 100 ms, until the
  // room's media plays with data; then applies the room state (onReady), then sends ready.
  const modWatchReady = (roomId, onReady) => {
    const check = () => {
      if (!s.inRoom || s.roomId !== roomId) return;
      if (video.readyState < 2) {
        setTimeout(check, K.mediaPollMs);
        return;
      }
      s.pendingMediaId = '';
      onReady();
      notifyReady(roomId);
    };
    check();
  };

  // --- room_state -------------------------------------------------------------------------

  const applyRoomCommon = (msg) => {
    s.inRoom = true;
    s.roomId = msg.room;
    if (!s.clientId && msg.client) s.clientId = msg.client;
    s.isHost = msg.payload.host_id === s.clientId;
    s.roomHostId = msg.payload.host_id;
    if (!s.hasClock && typeof msg.server_ts === 'number') {
      s.offsetMs = msg.server_ts - nowMs();
      s.hasClock = true;
    }
  };

  // Jan (ws.js 'room_state'): reads the position as true at the envelope's server_ts,
  // ignores state_server_ts and target_server_ts, seeks (beyond 1 s) to the position plus
  // the 300 ms lead and takes that seek target as its baseline; a room already playing
  // starts the 8 s join window (no state_update positions, no hard seek) at once.
  const janRoomState = (msg) => {
    applyRoomCommon(msg);
    const st = msg.payload && msg.payload.state;
    if (st) {
      s.syncTs = msg.server_ts || serverNow();
      s.syncPos = typeof st.position === 'number' ? st.position : 0;
      s.syncPlay = st.play_state || 'paused';
    }
    if (!s.isHost && st) {
      const target = leadPosition(st.position || 0, msg.server_ts);
      const playing = st.play_state === 'playing';
      markSyncing();
      if (playing) {
        const now = nowMs();
        s.initialSync = true;
        s.initialSyncUntil = now + K.joinMaxMs;
        s.cooldownUntil = now + K.joinCooldownMs;
        s.initialTarget = target;
      }
      if (Math.abs(video.currentTime - target) > K.seekThreshold) {
        video.currentTime = target;
        s.syncTs = serverNow();
        s.syncPos = target;
      }
      if (playing) playVideo('room_state');
      else if (st.play_state === 'paused') video.pause();
    }
    if (!s.isHost && msg.payload.media_id) janWatchReady();
  };

  // Modular (ws/handlers/sync.js): waits for the media (watchReady), then applies the room
  // state at its target_server_ts when that is still ahead. Baseline: the position at
  // state_server_ts (else server_ts), unleaded; the seek (beyond 1 s) goes to the projected
  // position plus the 300 ms lead; a playing room starts the 8 s join window.
  const modRoomState = (msg) => {
    applyRoomCommon(msg);
    if (!s.isHost && msg.payload.media_id) {
      s.pendingMediaId = msg.payload.media_id;
      modWatchReady(msg.room, () => modScheduleRoomSync(msg));
      return;
    }
    s.pendingMediaId = '';
    modScheduleRoomSync(msg);
  };

  const modScheduleRoomSync = (msg) => {
    if (s.isHost) { s.pendingPlayUntil = 0; return; }
    const target = msg.payload && msg.payload.target_server_ts;
    const attempt = ++s.attempt;
    const apply = () => {
      if (attempt !== s.attempt || !s.inRoom || s.roomId !== msg.room) return;
      modSyncToRoom(msg);
    };
    if (typeof target === 'number' && target > serverNow()) {
      s.pendingPlayUntil = target;
      scheduleAt(target, apply);
    } else {
      apply();
    }
  };

  const modSyncToRoom = (msg) => {
    const st = msg.payload && msg.payload.state;
    if (!st) return;
    const base = st.position || 0;
    const playing = st.play_state === 'playing';
    const stateTs = msg.payload.state_server_ts || msg.server_ts || serverNow();
    const target = playing ? leadPosition(base, stateTs) : base;
    s.syncTs = stateTs;
    s.syncPos = base;
    s.syncPlay = st.play_state || 'paused';
    if (playing) s.roomWaiting = false;
    s.pendingPlayUntil = 0;
    markSyncing();
    if (playing) {
      const now = nowMs();
      s.initialSync = true;
      s.initialSyncUntil = now + K.joinMaxMs;
      s.cooldownUntil = now + K.joinCooldownMs;
      s.initialTarget = target;
    }
    if (Math.abs(video.currentTime - target) > K.seekThreshold) video.currentTime = target;
    if (playing) playVideo('room_state');
    else if (st.play_state === 'paused') video.pause();
  };

  // --- player_event -----------------------------------------------------------------------

  // Jan (ws.js 'player_event'): the host ignores every player_event, its own scheduled play
  // included. A guest acts on arrival: beyond a 1 s gap it pauses and seeks (seek/buffering:
  // to the exact position; play: to position + elapsed + 300 ms). For play the baseline is
  // (payload.position at server_ts) and only video.play() waits for target_server_ts, so
  // the video starts from where it stands (the unprojected position). seek: plays at once
  // when the host plays (no scheduling). pause/buffering: pause at once.
  const janPlayerEvent = (msg) => {
    if (s.isHost) return;
    markSyncing();
    const p = msg.payload;
    if (!p) return;
    if (typeof p.position === 'number') {
      const exact = p.action === 'seek' || p.action === 'buffering';
      const target = exact ? p.position : leadPosition(p.position, msg.server_ts);
      const now = serverNow();
      if (Math.abs(target - video.currentTime) > K.seekThreshold) {
        video.pause();
        video.currentTime = target;
        s.syncTs = now; s.syncPos = target;
      } else {
        s.syncTs = now; s.syncPos = video.currentTime;
      }
    }
    if (p.action === 'play') {
      s.syncPlay = 'playing';
      s.syncTs = msg.server_ts;
      s.syncPos = p.position;
      s.cooldownUntil = nowMs() + K.commandCooldownMs;
      const target = p.target_server_ts || msg.server_ts;
      if (target && target > serverNow()) scheduleAt(target, () => playVideo('scheduled_play'));
      else playVideo('late_play');
    } else if (p.action === 'pause') {
      s.syncPlay = 'paused';
      s.cooldownUntil = 0;
      clearInitialSync();
      video.pause();
    } else if (p.action === 'seek') {
      const hostState = p.play_state || 'paused';
      s.syncPlay = hostState;
      if (hostState === 'playing') {
        s.cooldownUntil = nowMs() + K.commandCooldownMs;
        playVideo('seek');
      }
    } else if (p.action === 'buffering') {
      s.syncPlay = 'paused';
      video.pause();
    }
  };

  // Modular (ws/handlers/playback.js): every command waits for its target_server_ts; then
  // applyPosition() projects play (and a playing seek) from server_ts to now, seeks only
  // beyond 1 s, and takes the projected position as the baseline. The host schedules its
  // own copy of a play/pause too, and at the target does nothing when already there.
  const modPlayerEvent = (msg) => {
    if (s.isHost) { if (msg.payload) modHostOwnCopy(msg); return; }
    markSyncing();
    if (!msg.payload) return;
    const target = msg.payload.target_server_ts || msg.server_ts || serverNow();
    const roomId = msg.room || s.roomId;
    const attempt = ++s.attempt;
    s.pendingPlayUntil = target;
    scheduleAt(target, () => {
      if (attempt !== s.attempt || !s.inRoom || s.roomId !== roomId) return;
      markSyncing();
      modApplyPlayerEvent(msg);
    });
  };

  const modApplyPosition = (position, project, eventTs) => {
    if (typeof position !== 'number' || !Number.isFinite(position)) return;
    const elapsed = project && typeof eventTs === 'number' ? Math.max(0, serverNow() - eventTs) / 1000 : 0;
    const target = position + elapsed;
    if (Math.abs(target - video.currentTime) > K.seekThreshold) video.currentTime = target;
    s.syncPos = target;
    s.syncTs = serverNow();
  };

  const modApplyPlayerEvent = (msg) => {
    const p = msg.payload;
    const hostState = p.play_state || (p.action === 'play' ? 'playing' : 'paused');
    s.pendingPlayUntil = 0;
    clearInitialSync();
    switch (p.action) {
      case 'play':
        s.roomWaiting = false;
        modApplyPosition(p.position, true, msg.server_ts);
        s.syncPlay = 'playing';
        s.cooldownUntil = nowMs() + K.commandCooldownMs;
        playVideo('scheduled_play');
        break;
      case 'pause':
        s.roomWaiting = false;
        modApplyPosition(p.position, false, null);
        s.syncPlay = 'paused';
        s.cooldownUntil = 0;
        video.pause();
        break;
      case 'seek':
        s.roomWaiting = false;
        modApplyPosition(p.position, hostState === 'playing', msg.server_ts);
        s.syncPlay = hostState;
        s.cooldownUntil = nowMs() + K.commandCooldownMs;
        if (hostState === 'playing') playVideo('seek');
        else video.pause();
        break;
      case 'buffering':
        s.roomWaiting = true;
        modApplyPosition(p.position, false, null);
        s.syncPlay = 'paused';
        video.pause();
        break;
      default: break;
    }
  };

  const modHostOwnCopy = (msg) => {
    const action = msg.payload.action;
    if (action !== 'play' && action !== 'pause') return;
    const target = msg.payload.target_server_ts || msg.server_ts || serverNow();
    const roomId = msg.room || s.roomId;
    const attempt = ++s.attempt;
    scheduleAt(target, () => {
      if (attempt !== s.attempt || !s.inRoom || s.roomId !== roomId || !s.isHost) return;
      const playing = action === 'play';
      if (playing !== video.paused) return;   // already there: the usual case
      markSyncing();
      modApplyPosition(msg.payload.position, playing, msg.server_ts);
      if (playing) playVideo('host_own_play'); else video.pause();
    });
  };

  // --- state_update (ws.js / ws/handlers/sync.js handleStateUpdate) -------------------------
  // A playing report while paused resumes from the guest's own position; a paused one
  // pauses; otherwise, outside buffering and outside the cooldown (2 s after a command, 8 s
  // after joining a playing room), the report's position at server_ts becomes the baseline.
  // The modular client also cancels a command still waiting for its target.

  const onStateUpdate = (msg) => {
    if (s.isHost) return;
    const p = msg.payload || {};
    if (GEN === 'modular') s.attempt++;
    s.syncPlay = p.play_state || s.syncPlay;
    if (GEN === 'modular' && p.play_state === 'playing') s.roomWaiting = false;
    if (p.play_state === 'playing' && video.paused) {
      markSyncing();
      playVideo('state_update');
      s.syncTs = serverNow();
      s.syncPos = video.currentTime;
      s.cooldownUntil = nowMs() + K.commandCooldownMs;
      return;
    } else if (p.play_state === 'paused' && !video.paused) {
      markSyncing();
      s.cooldownUntil = 0;
      clearInitialSync();
      video.pause();
    }
    if (s.buffering || !videoReady()) return;
    if (s.cooldownUntil && nowMs() < s.cooldownUntil) return;
    s.syncTs = msg.server_ts || serverNow();
    if (typeof p.position === 'number') s.syncPos = p.position;
  };

  // --- drift correction (playback.js syncLoop / playback/sync.js syncLoop) ------------------

  const correctDrift = (drift, abs, expected, now) => {
    if (abs < K.deadzone) { rate1(); return; }
    if (abs >= K.hardSeek) {
      const inCooldown = s.cooldownUntil && nowMs() < s.cooldownUntil;
      if (!(s.initialSync || inCooldown)) {
        log('hard_seek', { expected, actual: video.currentTime, drift });
        s.suppressUntil = nowMs() + K.suppressMs;
        video.currentTime = expected;
        s.syncTs = now; s.syncPos = expected;
        rate1();
        return;
      }
    }
    const rate = Math.min(Math.max(1 + Math.sign(drift) * Math.sqrt(abs) * K.gain, K.rateMin), K.rateMax);
    video.playbackRate = rate;
  };

  const initialSyncStep = (abs, expected, now) => {
    if (!s.initialSync) return false;
    const inCooldown = s.cooldownUntil && nowMs() < s.cooldownUntil;
    if (abs > K.joinMaxDrift) {
      video.currentTime = expected;
      s.syncTs = now; s.syncPos = expected;
      s.initialTarget = GEN === 'jan' ? 0 : null;
      return true;
    }
    if (GEN === 'modular' && s.initialTarget !== null && abs >= K.hardSeek && !inCooldown) {
      video.currentTime = expected;   // post_buffer_seek
      s.syncTs = now; s.syncPos = expected;
      s.initialTarget = null;
      return true;
    }
    if (abs < K.joinDoneDrift) clearInitialSync();
    else if (s.initialSyncUntil && nowMs() >= s.initialSyncUntil) clearInitialSync();
    return false;
  };

  const syncLoop = () => {
    if (!s.inRoom || s.isHost) { rate1(); return; }
    if (GEN === 'modular' && s.pendingMediaId) { rate1(); return; }
    if (!s.syncTs || s.syncPlay !== 'playing') {
      rate1();
      // Modular holdRoomPause(): a guest playing in a paused room is paused again.
      if (GEN === 'modular' && s.syncTs && s.syncPlay === 'paused' && !video.paused && !s.syncing
          && !(s.pendingPlayUntil && serverNow() < s.pendingPlayUntil)) video.pause();
      return;
    }
    if (s.buffering || !videoReady()) return;
    if (video.paused) { rate1(); return; }
    const now = serverNow();
    const expected = s.syncPos + Math.max(0, now - s.syncTs) / 1000;
    const drift = expected - video.currentTime;
    const abs = Math.abs(drift);
    if (initialSyncStep(abs, expected, now)) return;
    correctDrift(drift, abs, expected, now);
  };

  // --- the host's player (playback.js bindVideo / playback/bind.js) ------------------------

  const pendingRoomWork = () => GEN === 'modular' && Boolean(s.pendingPlayUntil && serverNow() < s.pendingPlayUntil);
  const hostBlocked = () => s.syncing || pendingRoomWork();

  const sendStateUpdate = () => {
    if (!s.isHost || !s.inRoom || hostBlocked()) return;
    if (video.seeking) return;
    if (s.buffering || !videoReady()) return;
    const now = nowMs();
    if (now - s.lastStateSentAt < K.stateUpdateMs) return;
    s.lastStateSentAt = now;
    send('state_update', { position: video.currentTime, play_state: video.paused ? 'paused' : 'playing' });
  };

  const onHostEvent = (action) => {
    if (!s.isHost || !s.inRoom || !shouldSend() || hostBlocked()) return;
    if (action === 'seek' && !videoReady()) return;
    if (action === 'pause' && (s.buffering || video.seeking)) return;
    if (action === 'play' && video.seeking) return;
    if (action === 'seek') {
      const now = nowMs();
      if (now - s.lastSeekSentAt < 250) return;
      if (Math.abs(video.currentTime - s.lastSentPosition) < K.seekThreshold) return;
      s.lastSeekSentAt = now;
      s.lastSentPosition = video.currentTime;
    }
    const report = { position: video.currentTime, play_state: video.paused ? 'paused' : 'playing' };
    send('player_event', Object.assign({ action }, report));
    send('state_update', report);
    s.lastStateSentAt = nowMs();
  };

  video.addEventListener('waiting', () => {
    s.buffering = true;
    // The host tells the room it buffers (Chromium fires 'waiting' on every seek while
    // playing). Jan sends it unconditionally; modular not while a command is applied.
    if (!s.isHost || !s.inRoom) return;
    if (GEN === 'modular' && (hostBlocked() || !shouldSend())) return;
    send('player_event', { action: 'buffering', position: video.currentTime });
  });
  video.addEventListener('canplay', () => { s.buffering = false; });
  video.addEventListener('playing', () => {
    const wasBuffering = s.buffering;
    s.buffering = false;
    if (!wasBuffering || !s.isHost || !s.inRoom) return;
    if (GEN === 'modular' && (hostBlocked() || !shouldSend())) return;
    send('player_event', { action: 'play', position: video.currentTime });   // no play_state
  });
  video.addEventListener('play', () => onHostEvent('play'));
  video.addEventListener('pause', () => onHostEvent('pause'));
  video.addEventListener('seeked', () => onHostEvent('seek'));

  setInterval(() => { if (s.isHost) sendStateUpdate(); }, K.stateUpdateMs);
  setInterval(() => { if (s.inRoom && !s.isHost) syncLoop(); }, K.loopMs);

  // --- what the harness drives --------------------------------------------------------------

  const waitFor = (cond, ms, what) => new Promise((resolve, reject) => {
    const start = nowMs();
    const tick = () => {
      const v = cond();
      if (v) { resolve(v); return; }
      if (nowMs() - start > ms) { reject(new Error('timeout: ' + what)); return; }
      setTimeout(tick, 20);
    };
    tick();
  });

  window.OWPClient = {
    role: ROLE, behaviour: GEN, tuning: K, hooks, stats, state: s, video,
    connect,
    createRoom: async () => {
      // ws.js createRoom: start at the video's position, with the media id and the name.
      send('create_room', { start_pos: video.currentTime, media_id: MEDIA_ID, user_name: USER_NAME });
      await waitFor(() => s.inRoom && s.isHost, 5000, 'room_state after create_room');
      return s.roomId;
    },
    joinRoom: async (id) => {
      s.roomId = id;
      send('join_room', { user_name: USER_NAME }, id);
      await waitFor(() => s.inRoom && s.roomId === id, 5000, 'room_state after join_room');
      return id;
    },
    waitReadySent: () => waitFor(() => s.readySentFor && s.readySentFor === s.roomId, 5000, 'ready sent'),
    serverNow,
  };
})();
