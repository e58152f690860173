// Apart from certificates.ts so the CLI can dial managers without loading x509, which is slow to import.
/**
 * Every node certificate names this DNS SAN. Peers dial each other by IP and set
 * `grpc.ssl_target_name_override` to it, so addresses can change without reissuing certificates;
 * what authenticates a peer is the cluster CA, not its address.
 */
export const SHOAL_TLS_NAME = 'shoal-node';
