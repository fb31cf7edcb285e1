import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import avro from 'avsc';
import { describe, expect, it } from 'vitest';
import { appendRecord, hashRecord, verifyChain } from '../../services/common/auditChain.ts';
import { signedCommand } from '../../services/common/commandSigning.ts';
import { auditRecords, type AuditRecord } from '../../services/common/contracts/audit.ts';
import { generateSigningKeyPair, privateKeyFromPem } from '../../services/common/signing.ts';
import { frame } from '../../services/common/wireFormat.ts';
import { emptyControlState } from '../../services/control/controlState.ts';
import { decideCommand, type ControlInput } from '../../services/control/decideCommand.ts';
import { Keyring } from '../../services/control/keyring.ts';

const ROOT = resolve(import.meta.dirname, '../..');
const keys = { alice: generateSigningKeyPair(), mallory: generateSigningKeyPair() };
const keyring = Keyring.parse({ principals: [{ name: 'alice', publicKey: keys.alice.publicKey, roles: ['operator'] }] }, 'test');
const NOW = Date.UTC(2026, 10, 27, 12);
let offset = 0;
const input = (command: ControlInput['command']): ControlInput => ({ topic: 'exp.control', partition: 0, offset: offset++, command, apiRefusal: undefined });
const halt = (signer: keyof typeof keys, at = NOW) => signedCommand({ experimentId: 'exp', action: 'HALT', reason: 'stop' }, 'alice', privateKeyFromPem(keys[signer].privateKey), at);

describe('the audit record carries its reason code as a field', () => {
  it('sets the code of every decision, accepted or refused, and marks the ones that changed nothing', () => {
    const state = emptyControlState();
    state.statuses.set('exp', { experimentId: 'exp', status: 'RUNNING', since: NOW - 1_000, by: 'bob', reason: 'start', commandId: 's1', definitionVersion: 1, auditSequence: 0, startedAt: NOW - 1_000, concludedAt: null, decision: null });
    const inputs = [input(halt('alice')), input(halt('alice')), input(halt('mallory')), input(halt('alice', NOW - 3_600_000)), input({ undecodable: 'not Avro' })];
    const codes = inputs.map((i) => {
      const d = decideCommand(i, state, { keyring, apiPrincipal: 'admin-api', freshness: { maxAgeMs: 300_000, maxSkewMs: 30_000 }, now: NOW });
      state.lastAudit = d.audit;
      if (d.nonce) state.nonces.set(d.nonce.nonce, d.nonce.issuedAt);
      if (d.status) state.statuses.set(d.status.experimentId, d.status);
      return [d.audit.reasonCode, d.audit.reason.slice(0, d.audit.reason.indexOf(':'))];
    });
    // The text still starts with the code for people; HALT_UNCHANGED is written HALT there.
    expect(codes).toEqual([['HALT', 'HALT'], ['HALT_UNCHANGED', 'HALT'], ['BAD_SIGNATURE', 'BAD_SIGNATURE'], ['STALE', 'STALE'], ['MALFORMED', 'MALFORMED']]);
  });

  it('covers the code with the record hash: changing or removing it breaks the chain', () => {
    const fields = { decidedAt: NOW, decision: 'REJECTED', reason: 'STALE: too old', reasonCode: 'STALE', commandId: 'c1', experimentId: 'exp', action: 'HALT', issuer: 'alice', sourceTopic: 'exp.control', sourcePartition: 0, sourceOffset: 1 } as const;
    const first = appendRecord(undefined, fields);
    const second = appendRecord(first, { ...fields, decidedAt: NOW + 1, reason: 'HALT: stop', reasonCode: 'HALT', decision: 'ACCEPTED', sourceOffset: 2 });
    expect(verifyChain([first, second])).toEqual({ ok: true, records: 2 });
    expect(verifyChain([{ ...first, reasonCode: 'HALT' }, second])).toMatchObject({ ok: false, sequence: 1, problem: expect.stringMatching(/modified/) });
    expect(verifyChain([first, { ...second, reasonCode: null }])).toMatchObject({ ok: false, sequence: 2, problem: expect.stringMatching(/modified/) });
  });

  it('still decodes and verifies records written before the field existed (schemas/history/AuditRecord.v1)', () => {
    const v1 = avro.Type.forSchema(JSON.parse(readFileSync(resolve(ROOT, 'schemas/history/AuditRecord.v1.avsc'), 'utf8')) as avro.Schema, { registry: {} });
    // A chain as the control service wrote it before: hashed without any reasonCode.
    const old: Omit<AuditRecord, 'recordHash'>[] = [1, 2].map((sequence) => ({ sequence, previousHash: '', decidedAt: NOW + sequence, decision: 'ACCEPTED', reason: `HALT: stop ${sequence}`, commandId: `c${sequence}`, experimentId: 'exp', action: 'HALT', issuer: 'alice', sourceTopic: 'exp.control', sourcePartition: 0, sourceOffset: sequence }));
    const written: AuditRecord[] = [];
    for (const record of old) {
      const linked = { ...record, previousHash: written.at(-1)?.recordHash ?? '0'.repeat(64) };
      written.push({ ...linked, recordHash: hashRecord(linked) });
    }
    const decoded = written.map((r) => auditRecords.decode(frame(1, v1.toBuffer(r))));
    expect(decoded.map((d) => d.ok && d.value.reasonCode)).toEqual([null, null]);
    const records = decoded.map((d) => (d.ok ? d.value : undefined)!);
    expect(verifyChain(records)).toEqual({ ok: true, records: 2 });
    // And a new record chained after them verifies with its code.
    expect(verifyChain([...records, appendRecord(records[1], { decidedAt: NOW + 3, decision: 'ACCEPTED', reason: 'HALT: stop 3', reasonCode: 'HALT', commandId: 'c3', experimentId: 'exp', action: 'HALT', issuer: 'alice', sourceTopic: 'exp.control', sourcePartition: 0, sourceOffset: 3 })])).toEqual({ ok: true, records: 3 });
  });
});
