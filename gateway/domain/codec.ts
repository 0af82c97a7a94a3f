/**
 * The one CBOR codec setup of the gateway: device payloads, values on disk and upstream payloads all use it.
 * mapsAsObjects: every map we read or write has string keys; useRecords off so that plain RFC 8949 CBOR from any
 * device library decodes, and what we write decodes in any other library (cbor-x records are an extension only
 * cbor-x speaks).
 */
import { Decoder, Encoder } from 'cbor-x';

export const cborDecoder = new Decoder({ mapsAsObjects: true, useRecords: false });
export const cborEncoder = new Encoder({ mapsAsObjects: true, useRecords: false, variableMapSize: true });
