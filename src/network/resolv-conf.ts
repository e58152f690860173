/**
 * resolv.conf(5), read and written: the host's tells the node's resolver where to forward what
 * is not the cluster's, and a container on overlay networks gets one that names that resolver
 * and keeps the host's search domains and options. Pure.
 */

export interface ResolvConf {
  nameservers: string[];
  search: string[];
  options: string[];
}

/** The resolver's own default when a file names none (glibc and musl alike). */
const DEFAULT_NAMESERVER = '127.0.0.1';
/** Resolvers read no more nameservers than this. */
const MAX_NAMESERVERS = 3;

export function parseResolvConf(text: string): ResolvConf {
  const conf: ResolvConf = { nameservers: [], search: [], options: [] };
  for (const line of text.split('\n')) {
    const [keyword, ...values] = line.replace(/[#;].*/, '').trim().split(/\s+/);
    if (keyword === 'nameserver' && values[0] && conf.nameservers.length < MAX_NAMESERVERS) conf.nameservers.push(values[0]);
    // search and domain replace each other: the last line of either wins.
    else if (keyword === 'search' || keyword === 'domain') conf.search = values.filter(Boolean);
    else if (keyword === 'options') conf.options.push(...values.filter(Boolean));
  }
  if (!conf.nameservers.length) conf.nameservers.push(DEFAULT_NAMESERVER);
  return conf;
}

/**
 * A container's resolv.conf: the resolver at `nameserver` only, the host's search domains, and
 * ndots:0 (as Docker's for its embedded DNS), so a bare service name is asked as it is before
 * any search domain is tried and sent upstream.
 */
export function containerResolvConf(host: ResolvConf, nameserver: string): string {
  const options = ['ndots:0', ...host.options.filter((o) => !o.startsWith('ndots:'))];
  const lines = [`nameserver ${nameserver}`, ...(host.search.length ? [`search ${host.search.join(' ')}`] : []), `options ${options.join(' ')}`];
  return lines.join('\n') + '\n';
}
