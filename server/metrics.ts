import { register } from 'prom-client';

/**
 * A metric of prom-client's default registry, made on first use: a module loaded twice (jest's
 * module registry, the CLI and the server in one process) would otherwise register the name twice,
 * which prom-client refuses.
 */
export function registeredMetric<M>(name: string, make: () => M): M {
  return (register.getSingleMetric(name) as M | undefined) ?? make();
}
