import { dirname, join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { GcpFault, type GcpKmsEmulator } from './gcp-kms';

/**
 * gRPC front for the Cloud KMS emulator — the transport @google-cloud/kms uses by default in
 * production — serving Encrypt, Decrypt and CreateCryptoKey from the service's own .proto files
 * over TLS, with the same keys, faults and bearer-token check as the REST front.
 */
const STATUS: Record<string, grpc.status> = {
  INVALID_ARGUMENT: grpc.status.INVALID_ARGUMENT,
  UNAUTHENTICATED: grpc.status.UNAUTHENTICATED,
  PERMISSION_DENIED: grpc.status.PERMISSION_DENIED,
  NOT_FOUND: grpc.status.NOT_FOUND,
  ALREADY_EXISTS: grpc.status.ALREADY_EXISTS,
  RESOURCE_EXHAUSTED: grpc.status.RESOURCE_EXHAUSTED,
  FAILED_PRECONDITION: grpc.status.FAILED_PRECONDITION,
  UNAVAILABLE: grpc.status.UNAVAILABLE,
};

type Msg = Record<string, unknown>;
const b64 = (b: unknown) => (Buffer.isBuffer(b) ? b.toString('base64') : undefined);
const i64 = (v: unknown) => (v as { value?: string } | null | undefined)?.value;

export interface GrpcFront {
  port: number;
  close(): Promise<void>;
}

export async function startGrpcFront(emu: GcpKmsEmulator, tls: { key: string; cert: string }): Promise<GrpcFront> {
  const kmsProtos = join(dirname(require.resolve('@google-cloud/kms/package.json')), 'build', 'protos');
  const gaxProtos = join(dirname(require.resolve('google-gax')), '..', 'protos'); // google/api, google/protobuf
  const def = protoLoader.loadSync('google/cloud/kms/v1/service.proto', { longs: String, enums: String, defaults: false, oneofs: true, includeDirs: [kmsProtos, gaxProtos] });
  const pkg = grpc.loadPackageDefinition(def) as unknown as { google: { cloud: { kms: { v1: { KeyManagementService: grpc.ServiceClientConstructor } } } } };
  const unary = (run: (req: Msg, auth: unknown) => Promise<Msg>): grpc.handleUnaryCall<Msg, Msg> => (call, cb) => {
    run(call.request, call.metadata.get('authorization')[0]).then(
      (out) => cb(null, out),
      (err) => cb({ code: err instanceof GcpFault ? (STATUS[err.status] ?? grpc.status.INTERNAL) : grpc.status.INTERNAL, details: String(err.message ?? err) }),
    );
  };
  const server = new grpc.Server();
  server.addService(pkg.google.cloud.kms.v1.KeyManagementService.service, {
    encrypt: unary(async (r, auth) => {
      const out = await emu.call('encrypt', String(r.name), { plaintext: b64(r.plaintext), additionalAuthenticatedData: b64(r.additionalAuthenticatedData), plaintextCrc32c: i64(r.plaintextCrc32c), additionalAuthenticatedDataCrc32c: i64(r.additionalAuthenticatedDataCrc32c) }, auth);
      return { ...out, ciphertext: Buffer.from(String(out.ciphertext), 'base64'), ciphertextCrc32c: { value: out.ciphertextCrc32c } };
    }),
    decrypt: unary(async (r, auth) => {
      const out = await emu.call('decrypt', String(r.name), { ciphertext: b64(r.ciphertext), additionalAuthenticatedData: b64(r.additionalAuthenticatedData), ciphertextCrc32c: i64(r.ciphertextCrc32c), additionalAuthenticatedDataCrc32c: i64(r.additionalAuthenticatedDataCrc32c) }, auth);
      return { ...out, plaintext: Buffer.from(String(out.plaintext), 'base64'), plaintextCrc32c: { value: out.plaintextCrc32c } };
    }),
    createCryptoKey: unary((r, auth) => emu.call('create', `${String(r.parent)}/cryptoKeys/${String(r.cryptoKeyId)}`, {}, auth)),
  });
  const creds = grpc.ServerCredentials.createSsl(null, [{ private_key: Buffer.from(tls.key), cert_chain: Buffer.from(tls.cert) }], false);
  const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', creds, (err, p) => (err ? reject(err) : resolve(p))));
  return {
    port,
    close: () => new Promise<void>((resolve) => server.tryShutdown(() => resolve())).then(() => server.forceShutdown()),
  };
}
