/**
 * Argument parsing of the operator commands, where the server and token come from, how
 * API errors become messages and exit codes, and the SSE reader of --watch.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import {
  apiError,
  exitCodeFor,
  OperatorExitCode,
  resolveConnection,
  sseEvents,
} from '../../../../src/cli/operator/client.ts';
import { parseObject } from '../../../../src/cli/operator/event.ts';
import {
  parseChoice,
  parseCommand,
  parseCount,
  parseLabels,
  parseList,
  parseSwitch,
} from '../../../../src/cli/operator/flags.ts';
import { redact, redactText } from '../../../../src/cli/operator/support-bundle-sources.ts';
import { HornbillError } from '../../../../src/errors.ts';

const usage = 'Usage: test';

function usageError(run: () => unknown): HornbillError {
  try {
    run();
  } catch (error) {
    assert.ok(error instanceof HornbillError);
    assert.equal(error.code, 'CLI_USAGE');
    assert.equal(exitCodeFor(error), OperatorExitCode.USAGE);
    return error;
  }
  assert.fail('expected CLI_USAGE');
}

test('parseCommand takes the common flags anywhere, checks positionals and -o', () => {
  const parsed = parseCommand(
    ['vol1', '--size', '2Gi', '-o', 'yaml', '--server', 'http://h:1', '--token', 't'],
    { size: { type: 'string' } },
    usage,
    { min: 1, max: 1, names: 'NAME' },
  );
  assert.deepEqual(parsed.positionals, ['vol1']);
  assert.equal(parsed.output, 'yaml');
  assert.equal(parsed.values.size, '2Gi');
  assert.equal(parsed.values.server, 'http://h:1');
  assert.equal(parseCommand([], {}, usage, { min: 0, max: 0, names: '' }).output, 'table');
  assert.match(
    usageError(() => parseCommand([], {}, usage, { min: 1, max: 1, names: 'NAME' })).message,
    /expected NAME/,
  );
  usageError(() => parseCommand(['a', 'b'], {}, usage, { min: 1, max: 1, names: 'NAME' }));
  usageError(() => parseCommand(['a', '--bogus'], {}, usage, { min: 1, max: 1, names: 'NAME' }));
  assert.match(
    usageError(() => parseCommand(['-o', 'xml'], {}, usage, { min: 0, max: 0, names: '' })).message,
    /-o must be/,
  );
  // --help skips the positional check; support-bundle's -o is a file name.
  assert.equal(parseCommand(['--help'], {}, usage, { min: 1, max: 1, names: 'NAME' }).values.help, true);
  const bundle = parseCommand(['-o', 'out.tar.gz'], {}, usage, { min: 0, max: 0, names: '' }, false);
  assert.equal(bundle.values.output, 'out.tar.gz');
});

test('switches, lists, labels, counts and choices', () => {
  assert.equal(parseSwitch('on', '--x'), true);
  assert.equal(parseSwitch('OFF', '--x'), false);
  assert.equal(parseSwitch(undefined, '--x'), undefined);
  usageError(() => parseSwitch('maybe', '--x'));
  assert.deepEqual(parseList(' ssd, fast ,,'), ['ssd', 'fast']);
  assert.deepEqual(parseList(''), []);
  assert.deepEqual(parseLabels(['a=1', 'b=x=y', 'c=']), [
    { key: 'a', value: '1' },
    { key: 'b', value: 'x=y' },
    { key: 'c', value: '' },
  ]);
  usageError(() => parseLabels(['novalue']));
  assert.equal(parseCount('3', '--replicas', 20), 3);
  usageError(() => parseCount('0', '--replicas', 20));
  usageError(() => parseCount('2.5', '--replicas', 20));
  assert.equal(parseChoice('best-effort', '--data-locality', ['disabled', 'best-effort']), 'BEST_EFFORT');
  assert.equal(parseChoice('NBD', '--frontend', ['iscsi', 'nbd']), 'NBD');
  usageError(() => parseChoice('fc', '--frontend', ['iscsi', 'nbd']));
  assert.deepEqual(parseObject('volume/vol1'), { kind: 'Volume', name: 'vol1' });
  assert.deepEqual(parseObject('instancemanager/im-1'), { kind: 'InstanceManager', name: 'im-1' });
  assert.deepEqual(parseObject('nodes'), { kind: 'Node' });
  usageError(() => parseObject('pod/x'));
  usageError(() => parseObject('volume/'));
});

test('server and token: flag, then environment, then the token file; the server is normalized', () => {
  const home = fs.mkdtempSync(path.join(os.tmpdir(), 'hornbill-cli-'));
  try {
    const environment = { XDG_CONFIG_HOME: home };
    assert.deepEqual(resolveConnection({}, environment), {
      server: 'http://127.0.0.1:9500',
      token: undefined,
    });
    fs.mkdirSync(path.join(home, 'hornbill'));
    fs.writeFileSync(path.join(home, 'hornbill', 'token'), 'from-file\n');
    assert.equal(resolveConnection({}, environment).token, 'from-file');
    assert.equal(resolveConnection({}, { ...environment, HORNBILL_TOKEN: 'from-env' }).token, 'from-env');
    assert.equal(
      resolveConnection({ token: 'from-flag' }, { ...environment, HORNBILL_TOKEN: 'x' }).token,
      'from-flag',
    );
    assert.equal(
      resolveConnection({}, { ...environment, HORNBILL_SERVER: 'http://10.0.0.1:9500/graphql/' }).server,
      'http://10.0.0.1:9500',
    );
    assert.equal(resolveConnection({ server: 'http://a:1/' }, environment).server, 'http://a:1');
    assert.equal(resolveConnection({ server: '10.0.0.2:9500' }, environment).server, 'http://10.0.0.2:9500');
    usageError(() => resolveConnection({ server: 'ftp://a:1' }, environment));
    usageError(() => resolveConnection({ server: 'http://a:1/x' }, environment));
  } finally {
    fs.rmSync(home, { recursive: true, force: true });
  }
});

test('API errors read "code: message (field)" and map to the documented exit codes', () => {
  const invalid = apiError('RESOURCE_INVALID', 'size must be a multiple of 4 KiB', 'input.size');
  assert.equal(invalid.code, 'RESOURCE_INVALID');
  assert.equal(invalid.message, 'size must be a multiple of 4 KiB (input.size)');
  assert.equal(exitCodeFor(invalid), OperatorExitCode.FAILED);
  const unknown = apiError('SOMETHING_NEW', 'boom');
  assert.equal(unknown.code, 'CLI_API_ERROR');
  assert.equal(apiError('constructor', 'x').code, 'CLI_API_ERROR');
  assert.match(unknown.message, /^SOMETHING_NEW: boom/);
  assert.equal(exitCodeFor(apiError('RESOURCE_NOT_FOUND', 'x')), 3);
  assert.equal(exitCodeFor(apiError('GRAPHQL_UNAUTHENTICATED', 'x')), 4);
  assert.equal(exitCodeFor(apiError('GRAPHQL_FORBIDDEN', 'x')), 4);
  assert.equal(exitCodeFor(new HornbillError('MANAGER_UNREACHABLE', 'x')), 5);
  assert.equal(exitCodeFor(new Error('plain')), 1);
});

test('the SSE reader joins chunks, splits events and skips keep-alive comments', async () => {
  const encoder = new TextEncoder();
  const chunks = [
    ':\n\nevent: next\ndata: {"a"',
    ':1}\n\n',
    'event: next\r\ndata: {"a":2}\r\n\r\nevent: complete\ndata:\n\n',
  ];
  async function* body() {
    for (const chunk of chunks) yield encoder.encode(chunk);
  }
  const events = [];
  for await (const event of sseEvents(body())) events.push(event);
  assert.deepEqual(events, [
    { event: 'next', data: '{"a":1}' },
    { event: 'next', data: '{"a":2}' },
    { event: 'complete', data: '' },
  ]);
});

test('support bundles blank secrets: token-like keys, URL credentials and bearer tokens', () => {
  const redacted = redact({
    spec: {
      backupTargetURL: 's3://AKIAKEY:secretvalue@bucket/x',
      credentialSecret: 'minio-secret',
      password: 'hunter2',
    },
    items: [{ token: 'abc', name: 'keep' }],
  });
  assert.deepEqual(redacted, {
    spec: {
      backupTargetURL: 's3://REDACTED@bucket/x',
      credentialSecret: 'minio-secret',
      password: 'REDACTED',
    },
    items: [{ token: 'REDACTED', name: 'keep' }],
  });
  assert.equal(redactText('authorization: Bearer 3Ur42HnkTU1_dqkZSsos'), 'authorization: Bearer REDACTED');
});
