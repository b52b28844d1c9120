/**
 * What every resolver gets: the store and namespace, who is asking (the token's scope), and
 * a per-request loader that reads each list or object at most once, so that a query for 100
 * volumes with their replicas lists the replicas once, not 100 times.
 *
 * Scopes are ordered: `read` < `write` < `admin`. Queries and subscriptions need `read`
 * (or the `api-anonymous-read` setting), mutations `write`, and the mutations of settings,
 * nodes and disks `admin`.
 */
import { GraphQLError } from 'graphql';
import type { ErrorCode } from '../errors.ts';
import {
  findResource,
  type Kind,
  type ResourceOf,
  type ResourceStore,
  resolveSettings,
  type SettingValues,
} from '../resources/index.ts';
import type { SubscriptionServices } from './subscriptions.ts';

export const TOKEN_SCOPES = ['read', 'write', 'admin'] as const;
export type TokenScope = (typeof TOKEN_SCOPES)[number];

const SCOPE_RANK: Record<TokenScope, number> = { read: 1, write: 2, admin: 3 };

export function scopeAllows(granted: TokenScope | undefined, needed: TokenScope): boolean {
  return granted !== undefined && SCOPE_RANK[granted] >= SCOPE_RANK[needed];
}

/** Reads of one request (or one subscription payload): each list and object at most once. */
export class RequestLoader {
  private readonly lists = new Map<Kind, Promise<unknown[]>>();
  private readonly objects = new Map<string, Promise<unknown>>();
  private settingValues: Promise<SettingValues> | undefined;
  private readonly store: ResourceStore;
  private readonly namespace: string;

  constructor(store: ResourceStore, namespace: string) {
    this.store = store;
    this.namespace = namespace;
  }

  list<K extends Kind>(kind: K): Promise<ResourceOf<K>[]> {
    let items = this.lists.get(kind);
    if (items === undefined) {
      items = this.store.list(kind, { namespace: this.namespace }).then((list) => list.items);
      this.lists.set(kind, items);
    }
    return items as Promise<ResourceOf<K>[]>;
  }

  /** The object, or undefined when it does not exist. */
  get<K extends Kind>(kind: K, name: string): Promise<ResourceOf<K> | undefined> {
    const key = `${kind}/${name}`;
    let object = this.objects.get(key);
    if (object === undefined) {
      object = findResource(this.store, { kind, namespace: this.namespace, name });
      this.objects.set(key, object);
    }
    return object as Promise<ResourceOf<K> | undefined>;
  }

  settings(): Promise<SettingValues> {
    this.settingValues ??= this.list('Setting').then((settings) => resolveSettings(settings));
    return this.settingValues;
  }
}

export interface GraphQLContext {
  store: ResourceStore;
  namespace: string;
  /** The scope of the bearer token; undefined without a (valid) token. */
  scope: TokenScope | undefined;
  /** The token's name, for the log. */
  tokenName: string | undefined;
  /** A bearer token was presented but is not known: the request is refused. */
  tokenRejected: boolean;
  /** Replaced for every subscription payload so that each payload reads fresh state. */
  loader: RequestLoader;
  log: (record: Record<string, unknown>) => void;
  /** The server's subscription registry and event poller. */
  services: SubscriptionServices;
}

/** A GraphQL error carrying a Hornbill error code (and an HTTP status for whole-request refusals). */
export function codedGraphQLError(
  code: ErrorCode,
  message: string,
  options: { httpStatus?: number; field?: string } = {},
): GraphQLError {
  const extensions: Record<string, unknown> = { code };
  if (options.field !== undefined) extensions.field = options.field;
  if (options.httpStatus !== undefined) extensions.http = { status: options.httpStatus };
  return new GraphQLError(message, { extensions });
}

/** Throws GRAPHQL_UNAUTHENTICATED or GRAPHQL_FORBIDDEN unless the request's scope allows `needed`. */
export function requireScope(context: GraphQLContext, needed: TokenScope): void {
  if (scopeAllows(context.scope, needed)) return;
  if (context.scope === undefined) {
    throw codedGraphQLError(
      'GRAPHQL_UNAUTHENTICATED',
      `this operation needs a bearer token with scope ${needed}`,
      {
        httpStatus: 401,
      },
    );
  }
  throw codedGraphQLError(
    'GRAPHQL_FORBIDDEN',
    `this operation needs scope ${needed}; the token ${JSON.stringify(context.tokenName)} has scope ${context.scope}`,
    { httpStatus: 403 },
  );
}
