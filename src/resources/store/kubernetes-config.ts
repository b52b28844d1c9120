/**
 * Connecting to the API server: loading a kubeconfig (a file, the default locations, or the
 * pod's service account) and the options every request of the Kubernetes backend carries (a
 * timeout, the store's close signal, a Content-Type).
 */
import {
  type ConfigurationOptions,
  type HttpLibrary,
  KubeConfig,
  Observable,
  type ObservableMiddleware,
  type RequestContext,
  type ResponseContext,
} from '@kubernetes/client-node';
import { HornbillError } from '../../errors.ts';

/** Per request, watches excepted. */
export const DEFAULT_REQUEST_TIMEOUT_MS = 30_000;

export interface KubeConfigOptions {
  /** Path of a kubeconfig file. Absent: KUBECONFIG, ~/.kube/config, or the pod's service account. */
  kubeconfig?: string;
  /** A context of the kubeconfig (default: its current context). */
  context?: string;
  /** An already loaded configuration (wins over `kubeconfig` and `context`). */
  kubeConfig?: KubeConfig;
}

/** Loads the kubeconfig the options name; KUBERNETES_CONFIG_INVALID when it cannot. */
export function loadKubeConfig(options: KubeConfigOptions) {
  if (options.kubeConfig !== undefined) return options.kubeConfig;
  const config = new KubeConfig();
  try {
    if (options.kubeconfig !== undefined && options.kubeconfig !== '')
      config.loadFromFile(options.kubeconfig);
    else config.loadFromDefault();
    if (options.context !== undefined) config.setCurrentContext(options.context);
  } catch (error) {
    throw new HornbillError(
      'KUBERNETES_CONFIG_INVALID',
      `cannot load the kubeconfig ${options.kubeconfig ?? '(default)'}: ${(error as Error).message}`,
      { kubeconfig: options.kubeconfig, context: options.context },
      { cause: error },
    );
  }
  if (config.getCurrentCluster() === null) {
    throw new HornbillError(
      'KUBERNETES_CONFIG_INVALID',
      `the kubeconfig ${options.kubeconfig ?? '(default)'} names no current cluster`,
      { kubeconfig: options.kubeconfig, context: options.context },
    );
  }
  return config;
}

/** The namespace of the current context, if the kubeconfig sets one. */
export function contextNamespace(config: KubeConfig): string | undefined {
  const context = config.getContextObject(config.getCurrentContext());
  return context?.namespace === undefined || context.namespace === '' ? undefined : context.namespace;
}

/**
 * client-node request options: the request's signal (a timeout, and `signal` when given)
 * and optionally a Content-Type (the merge-patch type for patches).
 */
export function kubernetesRequestOptions(options: {
  timeoutMs: number;
  signal?: AbortSignal;
  contentType?: string;
  httpApi?: HttpLibrary;
}): ConfigurationOptions {
  const { timeoutMs, signal, contentType, httpApi } = options;
  const pre = (context: RequestContext) => {
    const timeout = AbortSignal.timeout(timeoutMs);
    context.setSignal(signal === undefined ? timeout : AbortSignal.any([signal, timeout]));
    if (contentType !== undefined) context.setHeaderParam('Content-Type', contentType);
    return new Observable(Promise.resolve(context));
  };
  const post = (context: ResponseContext) => new Observable(Promise.resolve(context));
  const middleware: ObservableMiddleware = { pre, post };
  const configuration: ConfigurationOptions = { middleware: [middleware], middlewareMergeStrategy: 'append' };
  return httpApi === undefined ? configuration : { ...configuration, httpApi };
}
