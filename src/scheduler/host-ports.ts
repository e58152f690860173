import type { EndpointSpec__Output } from '../gen/shoal/v1/EndpointSpec';

/**
 * The host-mode ports of an endpoint spec, as "9090/tcp": what a task made with it publishes on
 * its node. Ingress ports are the whole cluster's, not a node's.
 */
export const hostPortsOf = (endpoint: EndpointSpec__Output | null | undefined): string[] =>
  (endpoint?.ports ?? []).filter((p) => p.publish_mode === 'host' && p.published_port).map((p) => `${p.published_port}/${p.protocol || 'tcp'}`);
