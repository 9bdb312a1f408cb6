/** The RFC 5424 formatter against the RFC's own examples (§6.5), and RFC 5425 octet counting. */
import { formatRfc5424, octetFrame } from '../../server/audit/forward-syslog-format';
import { readOctetFrames } from './forward-syslog-receiver';

const BOM = '\uFEFF';
/** The fields of RFC 5424's examples 3 and 4, and their first structured-data element. */
const EVNTSLOG = { facility: 20, severity: 5, timestamp: '2003-10-11T22:14:15.003Z', hostname: 'mymachine.example.com', appName: 'evntslog', msgId: 'ID47' };
const EXAMPLE_SD: [string, [string, string][]] = ['exampleSDID@32473', [['iut', '3'], ['eventSource', 'Application'], ['eventID', '1011']]];

describe('RFC 5424 messages', () => {
  it('example 1: no structured data, a UTF-8 message after a BOM', () => {
    // <34>1 2003-10-11T22:14:15.003Z mymachine.example.com su - ID47 - BOM'su root' failed for lonvick on /dev/pts/8
    expect(
      formatRfc5424({ facility: 4, severity: 2, timestamp: '2003-10-11T22:14:15.003Z', hostname: 'mymachine.example.com', appName: 'su', msgId: 'ID47', message: "'su root' failed for lonvick on /dev/pts/8" }),
    ).toBe(`<34>1 2003-10-11T22:14:15.003Z mymachine.example.com su - ID47 - ${BOM}'su root' failed for lonvick on /dev/pts/8`);
  });

  it('example 3: one structured-data element and a message', () => {
    expect(
      formatRfc5424({ ...EVNTSLOG, structuredData: [EXAMPLE_SD], message: 'An application event log entry...' }),
    ).toBe(`<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut="3" eventSource="Application" eventID="1011"] ${BOM}An application event log entry...`);
  });

  it('example 4: two elements and no message', () => {
    expect(
      formatRfc5424({ ...EVNTSLOG, structuredData: [EXAMPLE_SD, ['examplePriority@32473', [['class', 'high']]]] }),
    ).toBe('<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut="3" eventSource="Application" eventID="1011"][examplePriority@32473 class="high"]');
  });

  it('facility and severity 0 are values, not missing (<0>); every empty header field is the NILVALUE', () => {
    expect(formatRfc5424({ facility: 0, severity: 0 })).toBe('<0>1 - - - - - -');
    expect(formatRfc5424({ facility: 23, severity: 7, hostname: '', message: '' })).toBe(`<191>1 - - - - - - ${BOM}`);
  });

  it('PARAM-VALUE escapes ", \\ and ] (§6.3.3); names and header fields cannot break the syntax', () => {
    const m = formatRfc5424({ facility: 13, severity: 6, appName: 'app name', msgId: 'x'.repeat(40), structuredData: [['a@1', [['actor', 'Doe "J" \\ ]x'], ['bad name=]', 'v']]]] });
    expect(m).toBe(`<110>1 - - app_name - ${'x'.repeat(32)} [a@1 actor="Doe \\"J\\" \\\\ \\]x" bad_name__="v"]`);
  });

  it('refuses an out-of-range facility or severity', () => {
    expect(() => formatRfc5424({ facility: 24, severity: 0 })).toThrow(/facility/);
    expect(() => formatRfc5424({ facility: 0, severity: 8 })).toThrow(/severity/);
  });
});

describe('RFC 5425 octet counting', () => {
  it('counts octets, not characters, and frames read back whatever the chunking', () => {
    const messages = ['<110>1 - - - - - - ' + BOM + 'Zoë ünïcödé 🔑', 'second', 'a '.repeat(3000)];
    const stream = Buffer.concat(messages.map(octetFrame));
    expect(octetFrame('é').toString('latin1')).toBe('2 \xc3\xa9');
    const got: string[] = [];
    let pending: Buffer = Buffer.alloc(0);
    for (let i = 0; i < stream.length; i += 7) {
      const r = readOctetFrames(Buffer.concat([pending, stream.subarray(i, i + 7)]));
      got.push(...r.messages);
      pending = r.rest;
    }
    expect(got).toEqual(messages);
    expect(pending.length).toBe(0);
  });
});
