/** The ResourceStore contract against the embedded LMDB store (always runs). */
import { openEmbeddedStore } from '../../src/resources/store/embedded.ts';
import { defer, tempDirectory } from '../helpers/temp.ts';
import { resourceStoreContract, volumeInput } from './resource-store.contract.ts';

const CHANGE_LOG_LIMIT = 32;

resourceStoreContract('embedded', async (t) => {
  const store = await openEmbeddedStore({
    directory: tempDirectory(t),
    changeLogLimit: CHANGE_LOG_LIMIT,
    probe: false,
  });
  defer(t, () => {
    void store.close();
  });
  const namespace = 'hornbill-system';
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
