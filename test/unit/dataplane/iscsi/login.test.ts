import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type ChapOptions, chapResponse } from '../../../../src/dataplane/iscsi/chap.ts';
import {
  type LoginContext,
  type LoginDecision,
  LoginNegotiation,
  LoginStatus,
  type TargetLoginLimits,
} from '../../../../src/dataplane/iscsi/login.ts';
import { parseBinary, type TextPairs } from '../../../../src/dataplane/iscsi/text.ts';

const TARGET = 'iqn.2026-11.io.hornbill:vol';
const LIMITS: TargetLoginLimits = {
  maxRecvDataSegmentLength: 262144,
  maxBurstLength: 1048576,
  firstBurstLength: 262144,
  immediateData: true,
  initialR2T: false,
  maxOutstandingR2T: 1,
  defaultTime2Wait: 2,
  defaultTime2Retain: 0,
};

function negotiation(chap: ChapOptions | null = null): LoginNegotiation {
  const context: LoginContext = {
    limits: LIMITS,
    chap,
    portalGroupTag: 7,
    targetExists: (name) => name === TARGET,
  };
  return new LoginNegotiation(context);
}

function answers(decision: LoginDecision): Map<string, string> {
  assert.equal(decision.kind, 'respond', decision.kind === 'fail' ? decision.reason : '');
  return new Map(decision.kind === 'respond' ? decision.keys : []);
}

const NAMES: TextPairs = [
  ['InitiatorName', 'iqn.2026-11.test:initiator'],
  ['SessionType', 'Normal'],
  ['TargetName', TARGET],
];

test('a leading login without authentication goes security → operational → full feature', () => {
  const login = negotiation();
  const security = login.process({
    currentStage: 0,
    nextStage: 1,
    transit: true,
    pairs: [...NAMES, ['AuthMethod', 'CHAP,None']],
  });
  const first = answers(security);
  assert.equal(first.get('AuthMethod'), 'None');
  assert.equal(first.get('TargetPortalGroupTag'), '7');
  assert.ok(security.kind === 'respond' && security.transit && security.nextStage === 1);
  const operational = login.process({
    currentStage: 1,
    nextStage: 3,
    transit: true,
    pairs: [
      ['HeaderDigest', 'CRC32C,None'],
      ['DataDigest', 'None,CRC32C'],
      ['MaxRecvDataSegmentLength', '65536'],
      ['MaxBurstLength', '4194304'],
      ['FirstBurstLength', '65536'],
      ['ImmediateData', 'Yes'],
      ['InitialR2T', 'No'],
      ['MaxOutstandingR2T', '8'],
      ['ErrorRecoveryLevel', '2'],
      ['DefaultTime2Wait', '0'],
      ['DefaultTime2Retain', '20'],
      ['MaxConnections', '4'],
      ['DataPDUInOrder', 'No'],
      ['IFMarker', 'Yes'],
      ['X-com.example.Thing', 'foo'],
    ],
  });
  const result = answers(operational);
  assert.ok(operational.kind === 'respond' && operational.transit && operational.nextStage === 3);
  assert.equal(result.get('HeaderDigest'), 'CRC32C', 'the first supported value of the list wins');
  assert.equal(result.get('DataDigest'), 'None');
  assert.equal(result.get('MaxRecvDataSegmentLength'), '262144', 'the target declares its own limit');
  assert.equal(result.get('MaxBurstLength'), '1048576', 'minimum of both');
  assert.equal(result.get('FirstBurstLength'), '65536');
  assert.equal(result.get('MaxOutstandingR2T'), '1');
  assert.equal(result.get('ErrorRecoveryLevel'), '0');
  assert.equal(result.get('DefaultTime2Wait'), '2', 'maximum of both');
  assert.equal(result.get('DefaultTime2Retain'), '0');
  assert.equal(result.get('MaxConnections'), '1');
  assert.equal(result.get('DataPDUInOrder'), 'Yes', 'OR function');
  assert.equal(result.get('IFMarker'), 'No', 'AND function');
  assert.equal(result.get('X-com.example.Thing'), 'NotUnderstood');
  const parameters = login.parameters;
  assert.equal(parameters.headerDigest, true);
  assert.equal(parameters.dataDigest, false);
  assert.equal(parameters.initiatorMaxRecvDataSegmentLength, 65536);
  assert.equal(parameters.immediateData, true);
  assert.equal(parameters.initialR2T, false);
});

test('login failures carry the RFC status class and detail', () => {
  const cases: [TextPairs, number][] = [
    [
      [
        ['SessionType', 'Normal'],
        ['TargetName', TARGET],
      ],
      LoginStatus.MISSING_PARAMETER,
    ],
    [
      [
        ['InitiatorName', 'iqn.x'],
        ['SessionType', 'Normal'],
      ],
      LoginStatus.MISSING_PARAMETER,
    ],
    [
      [
        ['InitiatorName', 'iqn.x'],
        ['TargetName', 'iqn.2026-11.io.hornbill:nope'],
      ],
      LoginStatus.NOT_FOUND,
    ],
    [
      [
        ['InitiatorName', 'iqn.x'],
        ['SessionType', 'Bogus'],
      ],
      LoginStatus.SESSION_TYPE_NOT_SUPPORTED,
    ],
    [[...NAMES, ['TargetAddress', '1.2.3.4']], LoginStatus.INITIATOR_ERROR],
    [[...NAMES, ['MaxRecvDataSegmentLength', '100']], LoginStatus.INITIATOR_ERROR],
  ];
  for (const [pairs, status] of cases) {
    const decision = negotiation().process({ currentStage: 1, nextStage: 3, transit: true, pairs });
    assert.equal(decision.kind, 'fail', JSON.stringify(pairs));
    assert.equal(decision.kind === 'fail' && decision.status, status, JSON.stringify(pairs));
  }
  for (const [currentStage, nextStage] of [
    [3, 3],
    [2, 3],
    [1, 0],
    [0, 2],
  ]) {
    const decision = negotiation().process({ currentStage, nextStage, transit: true, pairs: NAMES });
    assert.ok(
      decision.kind === 'fail' && decision.status === LoginStatus.INITIATOR_ERROR,
      `${currentStage}->${nextStage}`,
    );
  }
});

test('keys negotiated twice fail the login; invalid values are answered Reject', () => {
  const login = negotiation();
  answers(
    login.process({
      currentStage: 1,
      nextStage: 1,
      transit: false,
      pairs: [...NAMES, ['MaxBurstLength', '65536']],
    }),
  );
  const again = login.process({
    currentStage: 1,
    nextStage: 3,
    transit: true,
    pairs: [['MaxBurstLength', '65536']],
  });
  assert.ok(again.kind === 'fail' && again.status === LoginStatus.INITIATOR_ERROR);
  const result = answers(
    negotiation().process({
      currentStage: 1,
      nextStage: 3,
      transit: true,
      pairs: [
        ...NAMES,
        ['HeaderDigest', 'MD5'],
        ['ImmediateData', 'Maybe'],
        ['MaxBurstLength', 'lots'],
        ['OFMarkInt', '2048~8192'],
      ],
    }),
  );
  assert.equal(result.get('HeaderDigest'), 'Reject');
  assert.equal(result.get('ImmediateData'), 'Reject');
  assert.equal(result.get('MaxBurstLength'), 'Reject');
  assert.equal(result.get('OFMarkInt'), 'Irrelevant');
});

test('a discovery session needs no target name and answers burst keys as irrelevant', () => {
  const login = negotiation();
  const result = answers(
    login.process({
      currentStage: 1,
      nextStage: 3,
      transit: true,
      pairs: [
        ['InitiatorName', 'iqn.x'],
        ['SessionType', 'Discovery'],
        ['MaxBurstLength', '65536'],
        ['InitialR2T', 'Yes'],
      ],
    }),
  );
  assert.equal(result.get('MaxBurstLength'), 'Irrelevant');
  assert.equal(result.get('InitialR2T'), 'Irrelevant');
  assert.equal(result.has('TargetPortalGroupTag'), false);
  assert.equal(login.parameters.sessionType, 'Discovery');
});

const CHAP: ChapOptions = {
  initiator: { username: 'alice', secret: 'initiator-secret-123' },
  target: { username: 'target', secret: 'target-secret-4567' },
};

test('CHAP: the initiator proves its secret; mutual CHAP proves the target', () => {
  const login = negotiation(CHAP);
  const first = answers(
    login.process({
      currentStage: 0,
      nextStage: 1,
      transit: true,
      pairs: [...NAMES, ['AuthMethod', 'CHAP,None']],
    }),
  );
  assert.equal(first.get('AuthMethod'), 'CHAP');
  const challengeDecision = login.process({
    currentStage: 0,
    nextStage: 1,
    transit: true,
    pairs: [['CHAP_A', '7,5']],
  });
  assert.ok(
    challengeDecision.kind === 'respond' && !challengeDecision.transit,
    'no transit before the response',
  );
  const challenge = answers(challengeDecision);
  assert.equal(challenge.get('CHAP_A'), '5');
  const identifier = Number(challenge.get('CHAP_I'));
  const challengeBytes = parseBinary(challenge.get('CHAP_C')!)!;
  const ourChallenge = Buffer.alloc(16, 0x5a);
  const final = login.process({
    currentStage: 0,
    nextStage: 1,
    transit: true,
    pairs: [
      ['CHAP_N', 'alice'],
      ['CHAP_R', `0x${chapResponse(identifier, CHAP.initiator.secret, challengeBytes).toString('hex')}`],
      ['CHAP_I', '9'],
      ['CHAP_C', `0x${ourChallenge.toString('hex')}`],
    ],
  });
  const mutual = answers(final);
  assert.ok(final.kind === 'respond' && final.transit);
  assert.equal(mutual.get('CHAP_N'), 'target');
  assert.deepEqual(parseBinary(mutual.get('CHAP_R')!), chapResponse(9, CHAP.target!.secret, ourChallenge));
});

test('CHAP: a wrong secret, a missing CHAP offer, or skipping the security stage fail authentication', () => {
  const login = negotiation(CHAP);
  answers(
    login.process({
      currentStage: 0,
      nextStage: 1,
      transit: true,
      pairs: [...NAMES, ['AuthMethod', 'CHAP']],
    }),
  );
  const challenge = answers(
    login.process({ currentStage: 0, nextStage: 1, transit: true, pairs: [['CHAP_A', '5']] }),
  );
  const wrong = chapResponse(
    Number(challenge.get('CHAP_I')),
    'not-the-secret!!',
    parseBinary(challenge.get('CHAP_C')!)!,
  );
  const decision = login.process({
    currentStage: 0,
    nextStage: 1,
    transit: true,
    pairs: [
      ['CHAP_N', 'alice'],
      ['CHAP_R', `0x${wrong.toString('hex')}`],
    ],
  });
  assert.ok(decision.kind === 'fail' && decision.status === LoginStatus.AUTHENTICATION_FAILURE);
  const noChap = negotiation(CHAP).process({
    currentStage: 0,
    nextStage: 1,
    transit: true,
    pairs: [...NAMES, ['AuthMethod', 'None']],
  });
  assert.ok(noChap.kind === 'fail' && noChap.status === LoginStatus.AUTHENTICATION_FAILURE);
  const skipped = negotiation(CHAP).process({ currentStage: 1, nextStage: 3, transit: true, pairs: NAMES });
  assert.ok(skipped.kind === 'fail' && skipped.status === LoginStatus.AUTHENTICATION_FAILURE);
});
