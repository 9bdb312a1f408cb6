import { InitialSchema1763770000000 } from './1763770000000-initial-schema';
import { SignInState1763780000000 } from './1763780000000-sign-in-state';
import { Scim1763800000000 } from './1763800000000-scim';
import { GroupKeyVersions1764000000000 } from './1764000000000-group-key-versions';
import { OutboxPayloadLongtext1764000100000 } from './1764000100000-outbox-payload-longtext';
import { ScimListIndexes1764600000000 } from './1764600000000-scim-list-indexes';
import { KeyConnector1764610000000 } from './1764610000000-key-connector';
import { Backend1764620000000 } from './1764620000000-backend';
import { GroupRotationTurns1764630000000 } from './1764630000000-group-rotation-turns';
import { UsersEmailLower1764640000000 } from './1764640000000-users-email-lower';
import { AuditChain1764700000000 } from './1764700000000-audit-chain';
import { AuditReading1764710000000 } from './1764710000000-audit-reading';
import { AdminSessions1764760000000 } from './1764760000000-admin-sessions';
import { ServerInstances1764770000000 } from './1764770000000-server-instances';
import { IdempotencyClaims1764790000000 } from './1764790000000-idempotency-claims';
import { UsersLiveCount1764800000000 } from './1764800000000-users-live-count';
import { UsersLivePrefix1764810000000 } from './1764810000000-users-live-prefix';
import { SigningKeyGenerations1764820000000 } from './1764820000000-signing-key-generations';

/** Every migration, in order. Append new ones; never edit or reorder released ones. */
export const MIGRATIONS = [InitialSchema1763770000000, SignInState1763780000000, Scim1763800000000, GroupKeyVersions1764000000000, OutboxPayloadLongtext1764000100000, ScimListIndexes1764600000000, KeyConnector1764610000000, Backend1764620000000, GroupRotationTurns1764630000000, UsersEmailLower1764640000000, AuditChain1764700000000, AuditReading1764710000000, AdminSessions1764760000000, ServerInstances1764770000000, IdempotencyClaims1764790000000, UsersLiveCount1764800000000, UsersLivePrefix1764810000000, SigningKeyGenerations1764820000000];
