export * from './user';
export * from './user-keys';
export * from './group';
export * from './group-keys';
export * from './group-member';
export * from './group-key-version';
export * from './kek';
export * from './audit-event';
export * from './auth';
export * from './scim';
export * from './key-connector-user-key';
export * from './backend';
import { UserEntity } from './user';
import { UserKeysEntity } from './user-keys';
import { GroupEntity } from './group';
import { GroupKeysEntity } from './group-keys';
import { GroupMemberEntity } from './group-member';
import { GroupKeyVersionEntity, GroupMemberKeyEntity } from './group-key-version';
import { KekEntity } from './kek';
import { AuditEventEntity } from './audit-event';
import { AuthCodeEntity, SamlRequestEntity, SigningKeyEntity } from './auth';
import { SCIM_ENTITIES } from './scim';
import { KeyConnectorUserKeyEntity } from './key-connector-user-key';
import { IdempotencyEntity } from './backend';
import { GroupRotationTurnEntity } from './group-rotation-turn';

/** Every entity the data source knows. New entities are added here, one line each. */
export const ENTITIES = [UserEntity, UserKeysEntity, GroupEntity, GroupKeysEntity, GroupMemberEntity, GroupKeyVersionEntity, GroupMemberKeyEntity, KekEntity, AuditEventEntity, SamlRequestEntity, AuthCodeEntity, SigningKeyEntity, ...SCIM_ENTITIES, KeyConnectorUserKeyEntity, IdempotencyEntity, GroupRotationTurnEntity];
