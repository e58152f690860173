import type { EndpointSpec__Output } from '../gen/shoal/v1/EndpointSpec';
import type { Service__Output } from '../gen/shoal/v1/Service';

/** Per service id, the host-mode ports its tasks publish on their node, as "9090/tcp". */
export type HostPorts = ReadonlyMap<string, readonly string[]>;

/** The host-mode ports of an endpoint spec, as "9090/tcp"; ingress ports are the whole cluster's, not a node's. */
export const hostPortsOf = (endpoint: EndpointSpec__Output | null | undefined): string[] =>
  (endpoint?.ports ?? []).filter((p) => p.publish_mode === 'host' && p.published_port).map((p) => `${p.published_port}/${p.protocol || 'tcp'}`);

/**
 * The host ports of every service that publishes any. Read from the service's current spec, as
 * the nodes program them: a task holds the ports its service publishes now.
 */
export function hostPortsByService(services: Service__Output[]): HostPorts {
  const out = new Map<string, string[]>();
  for (const s of services) {
    const ports = hostPortsOf(s.spec?.endpoint_spec);
    if (ports.length) out.set(s.id, ports);
  }
  return out;
}
