import express, { type Express } from 'express';
import type { RequestListener } from 'node:http';
import { withFastKeyApi } from './fast/key-api';
import helmet from 'helmet';
import type { Config } from '../config';
import type { Store } from '../repositories/store';
import type { KmsRegistry } from '../../kms-adapters/registry';
import type { KeyService } from '../keys/key-service';
import type { Logger } from '../log';
import { requestContext } from './request-context';
import { notFound, problemHandler } from './problem';
import { healthRoutes } from './routes/health';
import { metricsRoutes } from './routes/metrics';
import { createAuthServices, type AuthServices } from '../auth';
import { samlRoutes } from './routes/saml';
import { oauthRoutes } from './routes/oauth';
import { jwksRoutes } from './routes/jwks';
import { keysApiRoutes } from './routes/keys-api';
import { scimRouter } from '../../scim/router';
import { backendRoutes, BACKEND_BASE_PATH } from '../../backend/routes';
import { openApiRoutes } from '../../backend/openapi';
import { keyConnectorRoutes } from '../../key-connector/routes';
import { adminRoutes } from '../../admin/routes';

export interface AppDeps {
  config: Readonly<Config>;
  store: Store;
  kms: KmsRegistry;
  keys: KeyService;
  log: Logger;
}

/** The Express app. Each endpoint family is one router, mounted here with one line. */
export function createApp(deps: AppDeps, auth: AuthServices = createAuthServices(deps)): Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('trust proxy', deps.config.server.trustProxy);
  app.use(requestContext);
  app.use(helmet());
  app.use(healthRoutes(deps));
  app.use(metricsRoutes());
  app.use(samlRoutes(deps, auth));
  app.use(oauthRoutes(deps, auth));
  app.use(jwksRoutes(deps, auth));
  app.use(keysApiRoutes(deps, auth));
  app.use('/scim/v2', scimRouter(deps));
  app.use(BACKEND_BASE_PATH, backendRoutes(deps));
  app.use(openApiRoutes());
  if (deps.config.keyConnector) app.use(deps.config.keyConnector.path, keyConnectorRoutes(deps, deps.config.keyConnector));
  app.use('/admin', adminRoutes(deps, auth));
  app.get('/', (_req, res) => res.redirect(303, '/admin/'));
  app.use(notFound);
  app.use(problemHandler(deps.log));
  return app;
}

/**
 * What the HTTP server runs: the key API's hot routes on plain node:http (fast/key-api.ts), the
 * rest through the Express app. `fastPath: false` serves everything through Express (the
 * equivalence test compares the two).
 */
export function createRequestListener(deps: AppDeps, opts: { fastPath?: boolean } = {}): RequestListener {
  const auth = createAuthServices(deps);
  const app = createApp(deps, auth);
  return opts.fastPath === false ? app : withFastKeyApi(deps, auth, app);
}
