/**
 * Inbound coercion of a SCIM resource body through scimmy's schema definition.
 *
 * `new SCIMMY.Schemas.User(body, 'in')` defines accessors for every attribute of the schema on a
 * fresh instance and then coerces each value a second time through them: most of the coercion
 * cost of a SCIM create (issue 10). For a body without extension attributes, the definition's own
 * coercion plus the constructor's checks give the same resource; bodies with extension attributes
 * (whose setters also prune empty values) keep the full path. test/scim/fast-create-coerce.test.ts
 * checks the two paths agree, results and errors, over the IdP bodies.
 */
import { SCIMMY } from './schemas';

type Json = Record<string, unknown>;
type SchemaClass = typeof SCIMMY.Schemas.User | typeof SCIMMY.Schemas.Group;

const plain = (v: unknown): Json => JSON.parse(JSON.stringify(v)) as Json;

function hasExtensionAttributes(body: Json): boolean {
  for (const key of Object.keys(body)) if (key.length > 4 && key.slice(0, 4).toLowerCase() === 'urn:') return true;
  return false;
}

/** The plain JSON of `new schema(body, 'in')`. */
export function coerceInbound(schema: SchemaClass, body: Json): Json {
  if (hasExtensionAttributes(body)) return plain(new schema(body, 'in'));
  const definition = schema.definition;
  // The constructor's schema checks, with its messages.
  const schemas = body.schemas ?? [];
  if (Array.isArray(schemas) && schemas.length) {
    if (!schemas.includes(definition.id)) throw new SCIMMY.Types.Error(400, 'invalidSyntax', 'The request body supplied a schema type that is incompatible with this resource');
    for (const a of definition.attributes) {
      if (a instanceof SCIMMY.Types.SchemaDefinition && (a as { required?: boolean }).required && !schemas.includes(a.id)) {
        throw new SCIMMY.Types.Error(400, 'invalidValue', `The request body is missing schema extension '${a.id}' required by this resource type`);
      }
    }
  }
  const coerced = definition.coerce(body, 'in') as Json;
  // The instance's JSON leaves out attributes that are never returned.
  const out: Json = {};
  for (const [name, value] of Object.entries(coerced)) {
    const returned = (definition.attribute(name) as SCIMMY.Types.Attribute | undefined)?.config?.returned as unknown;
    if (returned !== false && returned !== 'never') out[name] = value;
  }
  return plain(out);
}
