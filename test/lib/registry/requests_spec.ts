/**
 * The requests table (lib/registry/requests): pending and decided requests by id and username,
 * and the public shape that never carries a hash, a CSR or a certificate.
 */
import assert from 'node:assert/strict';
import { RequestTable, pairingCode, publicRequest, type DecidedRequest, type PendingRequest } from '../../../nodes/lib/registry/requests';

function pending(id: string, username: string, requestedAt = '2026-01-01T00:00:00.000Z'): PendingRequest {
  return {
    id,
    username,
    passwordHash: '$2b$04$hash',
    pairingCode: 'ABC234',
    flow: 'rest',
    clientId: '',
    address: '10.0.0.1',
    requestedAt,
    lastSeenAt: requestedAt,
    expiresAt: '2026-01-02T00:00:00.000Z',
    roles: ['asked'],
    status: 'pending',
    csr: '-----BEGIN CERTIFICATE REQUEST-----'
  };
}

function approved(r: PendingRequest, decidedAt: string): DecidedRequest {
  const { csr: _csr, ...rest } = r;
  return { ...rest, status: 'approved', decidedAt, decidedBy: 'admin', grantedRoles: ['granted'], certificate: '-----BEGIN CERTIFICATE-----' };
}

describe('requests table (lib/registry/requests)', function () {
  it('the public shape has no hash, CSR or certificate, and the decision once decided', function () {
    const p = publicRequest(pending('r1', 'dev-1'));
    assert.equal(p.hasCsr, true);
    assert.equal(p.context, null);
    for (const secret of ['passwordHash', 'csr', 'certificate', 'decidedAt']) assert.ok(!(secret in p), secret);
    const d = publicRequest(approved(pending('r1', 'dev-1'), '2026-01-01T01:00:00.000Z'));
    assert.equal(d.hasCsr, false);
    assert.equal(d.status, 'approved');
    assert.deepEqual([d.decidedAt, d.decidedBy, d.grantedRoles], ['2026-01-01T01:00:00.000Z', 'admin', ['granted']]);
    assert.ok(!JSON.stringify(d).includes('BEGIN'), 'no PEM');
  });

  it('finds requests by id and by username, lists pending ones oldest first, and bounds decided ones', function () {
    const t = new RequestTable();
    const a = pending('a', 'dev-a', '2026-01-01T00:00:02.000Z');
    const b = pending('b', 'dev-b', '2026-01-01T00:00:01.000Z');
    t.index(a);
    t.index(b);
    assert.deepEqual(
      t.listPending().map((r) => r.id),
      ['b', 'a']
    );
    assert.equal(t.find({ username: 'dev-a' }), a);
    assert.equal(t.find({ id: 'b' }), b);
    assert.equal(t.find({}), undefined);
    t.index(approved(a, '2026-01-01T02:00:00.000Z'));
    t.index(approved(b, '2026-01-01T01:00:00.000Z'));
    assert.equal(t.pendingCount, 0);
    assert.equal(t.pending('a'), undefined, 'a decided request is not pending');
    assert.equal(t.forUsername('dev-a')?.status, 'approved');
    assert.deepEqual(
      t.decidedBeyond(1).map((r) => r.id),
      ['b'],
      'the oldest decision goes first'
    );
    t.unindex(t.get('b')!);
    assert.equal(t.forUsername('dev-b'), undefined);
    assert.deepEqual(
      t.expired(Date.parse('2026-01-03T00:00:00.000Z')).map((r) => r.id),
      ['a']
    );
  });

  it('pairing codes are six characters without look-alikes (no 0, O, 1, I)', function () {
    for (let i = 0; i < 200; i++) assert.match(pairingCode(), /^[A-HJ-NP-Z2-9]{6}$/);
  });
});
