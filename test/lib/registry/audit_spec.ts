/** The audit log (lib/registry/audit): newest first, bounded, each remembered entry announced. */
import assert from 'node:assert/strict';
import type { AuditEntry } from '../../../nodes/lib/contract';
import { AuditLog } from '../../../nodes/lib/registry/audit';
import { AUDIT_KEEP } from '../../../nodes/lib/store';

describe('audit log (lib/registry/audit)', function () {
  it('stamps entries, announces what it remembers, and lists newest first within the limit', function () {
    const announced: AuditEntry[] = [];
    const log = new AuditLog((e) => announced.push(e));
    const before = Date.now();
    const entry = log.entry('approved', 'dev-1', 'alice', { requestId: 'r1', details: { roles: [] } });
    assert.equal(entry.action, 'approved');
    assert.ok(Date.parse(entry.at) >= before - 1000);
    assert.equal(announced.length, 0, 'an entry is announced once remembered (after it is stored), not when made');
    log.remember(entry);
    log.remember(log.entry('denied', 'dev-2', 'bob'));
    assert.deepEqual(
      announced.map((e) => e.username),
      ['dev-1', 'dev-2']
    );
    assert.deepEqual(
      log.list().map((e) => e.username),
      ['dev-2', 'dev-1']
    );
    assert.deepEqual(
      log.list(1).map((e) => e.username),
      ['dev-2']
    );
  });

  it(`keeps the newest ${AUDIT_KEEP} entries, loaded or remembered`, function () {
    const log = new AuditLog(() => undefined);
    log.load(Array.from({ length: AUDIT_KEEP + 5 }, (_, i) => ({ at: '', action: 'user-created' as const, username: `u${i}`, by: 'api' })));
    assert.equal(log.list(AUDIT_KEEP * 2).length, AUDIT_KEEP);
    assert.equal(log.list(AUDIT_KEEP).at(-1)?.username, 'u5');
    log.remember(log.entry('user-deleted', 'last', 'api'));
    assert.equal(log.list(AUDIT_KEEP * 2).length, AUDIT_KEEP);
    assert.equal(log.list(1)[0].username, 'last');
    assert.equal(log.list(AUDIT_KEEP).at(-1)?.username, 'u6');
  });
});
