/** How Kubernetes API failures become HornbillErrors (src/resources/store/kubernetes-errors.ts). */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ApiException } from '@kubernetes/client-node';
import { HornbillError } from '../../../src/errors.ts';
import {
  codeForStatus,
  fromKubernetesError,
  fromKubernetesStatus,
  statusBodyOf,
} from '../../../src/resources/store/kubernetes-errors.ts';

const request = { operation: 'get', kind: 'Volume', namespace: 'ns', name: 'vol1' };

/** An ApiException as client-node raises it: the status, and the body as raw text. */
function apiException(status: number, body?: object | string): ApiException<unknown> {
  const text = body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body);
  return new ApiException(status, 'Unknown API Status Code!', text, { 'content-type': 'application/json' });
}

function status(code: number, reason: string, message: string, details?: object) {
  return { kind: 'Status', apiVersion: 'v1', status: 'Failure', code, reason, message, details };
}

describe('fromKubernetesError', () => {
  test('404 for a named object is RESOURCE_NOT_FOUND, with the status in details', () => {
    const error = fromKubernetesError(
      apiException(
        404,
        status(404, 'NotFound', 'volumes.hornbill.io "vol1" not found', {
          name: 'vol1',
          group: 'hornbill.io',
          kind: 'volumes',
        }),
      ),
      request,
    );
    assert.equal(error.code, 'RESOURCE_NOT_FOUND');
    assert.equal(error.details.status, 404);
    assert.equal(error.details.reason, 'NotFound');
    assert.equal(error.details.name, 'vol1');
    assert.match(error.message, /get Volume ns\/vol1: HTTP 404: volumes.hornbill.io "vol1" not found/);
  });

  test('404 without details (an unknown path: the CRD is not installed) is KUBERNETES_RESOURCE_TYPE_MISSING', () => {
    const error = fromKubernetesError(
      apiException(404, status(404, 'NotFound', 'the server could not find the requested resource')),
      { operation: 'list', kind: 'Volume', namespace: 'ns' },
    );
    assert.equal(error.code, 'KUBERNETES_RESOURCE_TYPE_MISSING');
  });

  test('404 without a body stays RESOURCE_NOT_FOUND', () => {
    assert.equal(fromKubernetesError(apiException(404), request).code, 'RESOURCE_NOT_FOUND');
  });

  test('409 AlreadyExists and 409 Conflict', () => {
    const exists = fromKubernetesError(
      apiException(
        409,
        status(409, 'AlreadyExists', 'volumes.hornbill.io "vol1" already exists', { name: 'vol1' }),
      ),
      { ...request, operation: 'create' },
    );
    assert.equal(exists.code, 'RESOURCE_ALREADY_EXISTS');
    const conflict = fromKubernetesError(
      apiException(
        409,
        status(
          409,
          'Conflict',
          'Operation cannot be fulfilled on volumes.hornbill.io "vol1": the object has been modified',
        ),
      ),
      { ...request, operation: 'update' },
    );
    assert.equal(conflict.code, 'RESOURCE_CONFLICT');
    assert.equal(conflict.details.status, 409);
  });

  test('422 is RESOURCE_INVALID with the causes as field errors', () => {
    const error = fromKubernetesError(
      apiException(
        422,
        status(422, 'Invalid', 'Volume.hornbill.io "vol1" is invalid', {
          causes: [
            {
              reason: 'FieldValueInvalid',
              message: 'Invalid value: 0: must be at least 1',
              field: 'spec.numberOfReplicas',
            },
            {
              reason: 'FieldValueForbidden',
              message: 'Forbidden: no new finalizers',
              field: '.metadata.finalizers',
            },
          ],
        }),
      ),
      { ...request, operation: 'update' },
    );
    assert.equal(error.code, 'RESOURCE_INVALID');
    assert.equal(error.details.field, 'spec.numberOfReplicas');
    assert.deepEqual(error.details.causes, [
      { field: 'spec.numberOfReplicas', reason: 'Invalid value: 0: must be at least 1' },
      { field: 'metadata.finalizers', reason: 'Forbidden: no new finalizers' },
    ]);
  });

  test('410, 400, 401, 403, 429 and 5xx', () => {
    const cases: [number, string][] = [
      [410, 'RESOURCE_GONE'],
      [400, 'INVALID_ARGUMENT'],
      [401, 'KUBERNETES_UNAUTHORIZED'],
      [403, 'KUBERNETES_FORBIDDEN'],
      [429, 'KUBERNETES_REQUEST_FAILED'],
      [500, 'KUBERNETES_REQUEST_FAILED'],
      [503, 'KUBERNETES_REQUEST_FAILED'],
      [504, 'KUBERNETES_REQUEST_FAILED'],
    ];
    for (const [code, expected] of cases) {
      const error = fromKubernetesError(apiException(code, status(code, 'X', 'message')), request);
      assert.equal(error.code, expected, `HTTP ${code}`);
      assert.equal(error.details.status, code);
    }
  });

  test('429 keeps retryAfterSeconds', () => {
    const error = fromKubernetesError(
      apiException(429, status(429, 'TooManyRequests', 'slow down', { retryAfterSeconds: 3 })),
      request,
    );
    assert.equal(error.details.retryAfterSeconds, 3);
  });

  test('a body that is not JSON is kept as the message', () => {
    const error = fromKubernetesError(apiException(502, '<html>Bad Gateway</html>'), request);
    assert.equal(error.code, 'KUBERNETES_REQUEST_FAILED');
    assert.equal(error.details.serverMessage, '<html>Bad Gateway</html>');
  });

  test('a watch failure carries the status as statusCode', () => {
    const failure = Object.assign(new Error('Gone'), { statusCode: 410 });
    assert.equal(fromKubernetesError(failure, { operation: 'watch', kind: 'Volume' }).code, 'RESOURCE_GONE');
    const forbidden = Object.assign(new Error('Forbidden'), { statusCode: 403 });
    assert.equal(
      fromKubernetesError(forbidden, { operation: 'watch', kind: 'Volume' }).code,
      'KUBERNETES_FORBIDDEN',
    );
  });

  test('network failures are KUBERNETES_UNREACHABLE with the system code', () => {
    const refused = new TypeError('fetch failed', {
      cause: Object.assign(new Error('connect ECONNREFUSED 10.0.0.1:6443'), { code: 'ECONNREFUSED' }),
    });
    const error = fromKubernetesError(refused, request);
    assert.equal(error.code, 'KUBERNETES_UNREACHABLE');
    assert.equal(error.details.status, 0);
    assert.equal(error.details.systemCode, 'ECONNREFUSED');
    assert.match(error.message, /ECONNREFUSED/);
    const timeout = new DOMException('The operation was aborted due to timeout', 'TimeoutError');
    const timedOut = fromKubernetesError(timeout, request);
    assert.equal(timedOut.code, 'KUBERNETES_UNREACHABLE');
    assert.equal(timedOut.details.timedOut, true);
    const reset = Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' });
    assert.equal(fromKubernetesError(reset, request).code, 'KUBERNETES_UNREACHABLE');
  });

  test('other errors are KUBERNETES_REQUEST_FAILED; HornbillErrors pass through', () => {
    assert.equal(fromKubernetesError(new Error('odd'), request).code, 'KUBERNETES_REQUEST_FAILED');
    assert.equal(fromKubernetesError('a string', request).code, 'KUBERNETES_REQUEST_FAILED');
    const own = new HornbillError('RESOURCE_INVALID', 'x', {});
    assert.equal(fromKubernetesError(own, request), own);
  });

  test('the server message is cut to a bounded length', () => {
    const error = fromKubernetesError(
      apiException(500, status(500, 'InternalError', 'x'.repeat(10_000))),
      request,
    );
    assert.ok((error.details.serverMessage as string).length <= 1024);
  });
});

describe('watch ERROR events', () => {
  test('410 Expired and a too-large resourceVersion are RESOURCE_GONE', () => {
    const expired = fromKubernetesStatus(status(410, 'Expired', 'too old resource version: 1 (5123)'), {
      operation: 'watch',
      kind: 'Volume',
    });
    assert.equal(expired.code, 'RESOURCE_GONE');
    const tooLarge = fromKubernetesStatus(
      status(504, 'Timeout', 'Too large resource version', {
        causes: [{ reason: 'ResourceVersionTooLarge', message: 'Too large resource version' }],
      }),
      { operation: 'watch', kind: 'Volume' },
    );
    assert.equal(tooLarge.code, 'RESOURCE_GONE');
    const internal = fromKubernetesStatus(status(500, 'InternalError', 'boom'), {
      operation: 'watch',
      kind: 'Volume',
    });
    assert.equal(internal.code, 'KUBERNETES_REQUEST_FAILED');
  });
});

describe('helpers', () => {
  test('codeForStatus', () => {
    assert.equal(codeForStatus(409, { reason: 'AlreadyExists' }), 'RESOURCE_ALREADY_EXISTS');
    assert.equal(codeForStatus(409, undefined), 'RESOURCE_CONFLICT');
    assert.equal(
      codeForStatus(404, { reason: 'NotFound', details: { kind: 'namespaces' } }),
      'RESOURCE_NOT_FOUND',
    );
  });

  test('statusBodyOf parses text, keeps objects, ignores empty bodies', () => {
    assert.deepEqual(statusBodyOf({ body: '{"reason":"NotFound"}' }), { reason: 'NotFound' });
    assert.deepEqual(statusBodyOf({ body: { reason: 'Conflict' } }), { reason: 'Conflict' });
    assert.equal(statusBodyOf({ body: '' }), undefined);
    assert.equal(statusBodyOf({}), undefined);
  });
});
