/** The shoal release, shared by the CLI and the daemon; the CLI imports it without loading the daemon. */
export const VERSION = '0.1.0';
