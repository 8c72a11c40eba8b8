/** Z85 text and CURVE key pairs, through libzmq (`zmq_z85_*`, `zmq_curve_*`). */

import { check, cstr, zmq, ZmqError } from "./binding.ts";

const decoder = new TextDecoder();

/** A CURVE key pair, each key as 40 characters of Z85 text. */
export interface CurveKeyPair {
  readonly publicKey: string;
  readonly secretKey: string;
}

/** A new CURVE key pair from libzmq (`zmq_curve_keypair`). Throws when CURVE is not built in. */
export function curveKeypair(): CurveKeyPair {
  const publicText = new Uint8Array(41);
  const secretText = new Uint8Array(41);
  check(zmq().zmq_curve_keypair(publicText, secretText));
  return {
    publicKey: decoder.decode(publicText.subarray(0, 40)),
    secretKey: decoder.decode(secretText.subarray(0, 40)),
  };
}

/** The public key that belongs to `secretKey` (Z85 in, Z85 out; `zmq_curve_public`). */
export function curvePublic(secretKey: string): string {
  const publicText = new Uint8Array(41);
  check(zmq().zmq_curve_public(publicText, cstr(secretKey)));
  return decoder.decode(publicText.subarray(0, 40));
}

/** Z85 text of `bytes` (a multiple of 4 bytes long, e.g. a 32-byte key). */
export function z85Encode(bytes: Uint8Array): string {
  const text = new Uint8Array(Math.ceil(bytes.length * 5 / 4) + 1);
  const ptr = zmq().zmq_z85_encode(text, bytes as Uint8Array<ArrayBuffer>, BigInt(bytes.length));
  if (!ptr) throw new ZmqError(22, `cannot Z85-encode ${bytes.length} bytes (need a multiple of 4)`);
  return decoder.decode(text.subarray(0, text.length - 1));
}

/** The bytes of Z85 `text`, or undefined when it is not valid Z85 (length a multiple of 5). */
export function z85Decode(text: string): Uint8Array | undefined {
  // libzmq's decoder reads any byte: keep the text to Z85's alphabet first
  if (text.length % 5 !== 0 || /[^\x21-\x7e]|["',;\\_`|~]/.test(text)) return undefined;
  const bytes = new Uint8Array(text.length * 4 / 5);
  const ptr = zmq().zmq_z85_decode(bytes, cstr(text));
  return ptr ? bytes : undefined;
}
