// A minimal WebSocket client for scripts/container-test (Node 18+, no dependencies).
//   node ws-check.mjs subscribe <port>   connect, subscribe, wait for one quote; print it; exit 0
//   node ws-check.mjs hold <port>        connect, then print the close code the server sends; exit 0
// Exits 1 with a one-line reason on any failure, and after 20 s at the latest.
import { createHash, randomBytes } from 'node:crypto';
import { connect } from 'node:net';

const [mode, portText] = process.argv.slice(2);
const port = Number(portText);
if (!['subscribe', 'hold'].includes(mode) || !port) {
    console.error('usage: node ws-check.mjs subscribe|hold <port>');
    process.exit(2);
}
const fail = (why) => { console.error(`ws-check: ${why}`); process.exit(1); };
setTimeout(() => fail('timed out after 20 s'), 20000).unref();

const key = randomBytes(16).toString('base64');
const accept = createHash('sha1').update(key + '258EAFA5-E914-47DA-95CA-C5AB0DC85B11').digest('base64');
const socket = connect(port, '127.0.0.1');
let buffer = Buffer.alloc(0);
let upgraded = false;
let id = null;

/** One masked text frame, as a client must send. */
function send(type) {
    const payload = Buffer.from(JSON.stringify({ type, payload: { id } }));
    const mask = randomBytes(4);
    const header = payload.length < 126 ? Buffer.from([0x81, 0x80 | payload.length])
        : Buffer.from([0x81, 0x80 | 126, payload.length >> 8, payload.length & 0xff]);
    const body = Buffer.from(payload.map((byte, i) => byte ^ mask[i % 4]));
    socket.write(Buffer.concat([header, mask, body]));
}

function onFrame(opcode, payload) {
    if (opcode === 0x8) {
        const code = payload.length >= 2 ? payload.readUInt16BE(0) : 1005;
        console.log(`close ${code} ${payload.subarray(2).toString()}`.trim());
        process.exit(mode === 'hold' ? 0 : 1);
    }
    if (opcode !== 0x1) return;
    const event = JSON.parse(payload.toString());
    if (event.type === 'initial') {
        id = event.payload.id;
        send('connect');
        if (mode === 'subscribe') send('subscribe');
        else console.log(`open ${id}`);
    } else if (event.type === 'wisdom_distribution' && mode === 'subscribe') {
        console.log(event.payload.message);
        process.exit(0);
    } else if (event.type === 'error') {
        fail(`error event ${JSON.stringify(event.payload)}`);
    }
}

socket.on('connect', () => socket.write(
    `GET /ws HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
    `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`));
socket.on('error', (e) => fail(e.message));
socket.on('close', () => fail('connection closed without a close frame'));
socket.on('data', (chunk) => {
    buffer = Buffer.concat([buffer, chunk]);
    if (!upgraded) {
        const end = buffer.indexOf('\r\n\r\n');
        if (end < 0) return;
        const head = buffer.subarray(0, end).toString();
        if (!head.startsWith('HTTP/1.1 101') || !head.includes(accept)) fail(`upgrade refused: ${head.split('\r\n')[0]}`);
        upgraded = true;
        buffer = buffer.subarray(end + 4);
    }
    // Server frames are unmasked; ours are small, so 7- and 16-bit lengths suffice.
    while (buffer.length >= 2) {
        let length = buffer[1] & 0x7f;
        let offset = 2;
        if (length === 126) { if (buffer.length < 4) return; length = buffer.readUInt16BE(2); offset = 4; }
        else if (length === 127) fail('frame too large for this probe');
        if (buffer.length < offset + length) return;
        onFrame(buffer[0] & 0x0f, buffer.subarray(offset, offset + length));
        buffer = buffer.subarray(offset + length);
    }
});
