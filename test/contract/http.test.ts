/**
 * The ResourceStore contract against HttpResourceStore: a real `hornbill manager` process
 * (embedded store in a temp folder, no instance managers) per test, reached over its HTTP
 * resource API. The manager runs without controllers' effects mattering: the contract
 * suite uses namespaces of its own.
 */
import { HttpResourceStore } from '../../src/manager/http-store.ts';
import { startHornbill } from '../helpers/processes.ts';
import { defer, tempDirectory } from '../helpers/temp.ts';
import { resourceStoreContract, volumeInput } from './resource-store.contract.ts';

const CHANGE_LOG_LIMIT = 32;

resourceStoreContract('http', async (t) => {
  const directory = tempDirectory(t);
  const manager = await startHornbill(t, [
    'manager',
    '--store',
    `embedded:${directory}/state`,
    '--listen',
    '127.0.0.1:0',
    '--change-log-limit',
    String(CHANGE_LOG_LIMIT),
    '--no-controllers',
  ]);
  const store = new HttpResourceStore({ url: manager.ready.url });
  defer(t, () => {
    void store.close();
  });
  const namespace = 'hornbill-contract';
  return {
    store,
    namespace,
    otherNamespace: 'hornbill-other',
    async staleResourceVersion() {
      const first = await store.create(volumeInput(namespace, 'churn'));
      let current = first;
      for (let index = 0; index <= CHANGE_LOG_LIMIT; index++) {
        current = await store.update({
          ...current,
          metadata: { ...current.metadata, labels: { step: String(index) } },
        });
      }
      return first.metadata.resourceVersion;
    },
  };
});
