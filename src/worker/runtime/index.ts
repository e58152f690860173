export { Runtime, parseSignal } from './runtime';
export type { ContainerConfig, ContainerState, ContainerStatus, RuntimeOptions } from './types';
