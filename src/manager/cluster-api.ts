import type { ControlHandlers } from '../gen/shoal/v1/Control';
import { issueKeyPair } from '../ca/certificates';
import { unary } from '../common/grpc-handlers';
import { newId } from '../common/tasks';
import { checkJoinRole, loadSecrets, rotateToken } from './cluster-secrets';
import type { Store } from './store/store';

export type ClusterApiHandlers = Pick<ControlHandlers, 'GetJoinToken' | 'IssueClientCert'>;

// Admin client certificates are for people's CLIs: shorter-lived than node certificates, not renewed.
const CLIENT_CERT_DAYS = 30;

/** Join tokens and admin client certificates: what only a manager hands out. */
export class ClusterApi {
  constructor(
    private readonly store: Store,
    private readonly clusterId: string,
    /** This manager's host:port, for the join command it prints. */
    private readonly addr: string,
  ) {}

  handlers(): ClusterApiHandlers {
    return {
      GetJoinToken: unary(async (req) => {
        const role = checkJoinRole(req.role);
        const token = req.rotate ? await rotateToken(this.store, role) : (await loadSecrets(this.store))[`${role}_token`];
        return { token, addr: this.addr };
      }),
      IssueClientCert: unary(async () => {
        const { root_ca: ca } = await loadSecrets(this.store);
        const pair = await issueKeyPair(ca, { nodeId: `admin-${newId().slice(0, 12)}`, role: 'admin', clusterId: this.clusterId }, { days: CLIENT_CERT_DAYS, client: true, server: false });
        return { ca_pem: ca.certPem, cert_pem: pair.certPem, key_pem: pair.keyPem };
      }),
    };
  }
}
