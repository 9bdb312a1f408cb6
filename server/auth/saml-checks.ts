import { DOMParser } from '@xmldom/xmldom';

/**
 * Checks node-saml leaves to the application, done on the XML it verified.
 *
 * node-saml verifies signatures, wrapping, audience, time conditions and InResponseTo; it does not
 * check SubjectConfirmationData/@Recipient, Response/@Destination or the assertion's Issuer, and it
 * parses DOCTYPEs. These functions fill those gaps. Each returns a reason string or undefined.
 */
const NS_SAML = 'urn:oasis:names:tc:SAML:2.0:assertion';
const NS_SAMLP = 'urn:oasis:names:tc:SAML:2.0:protocol';
const BEARER = 'urn:oasis:names:tc:SAML:2.0:cm:bearer';

const NS_DSIG = 'http://www.w3.org/2000/09/xmldsig#';
/** SHA-1 (and HMAC) signature and reference digest methods: collisions are practical; no current IdP needs them. */
const WEAK_SIGNATURE = new Set([`${NS_DSIG}rsa-sha1`, `${NS_DSIG}dsa-sha1`, `${NS_DSIG}hmac-sha1`]);
const WEAK_DIGEST = `${NS_DSIG}sha1`;

/** True when a visible XML signature uses SHA-1 (an OAEP key-transport digest is not a signature). */
function weakSignature(xml: string): boolean {
  const doc = parse(xml);
  if (!doc) return false; // malformed: node-saml refuses it with its own reason
  const list = (local: string) => Array.from(doc.getElementsByTagNameNS(NS_DSIG, local) as unknown as ArrayLike<Element>);
  if (list('SignatureMethod').some((e) => WEAK_SIGNATURE.has(e.getAttribute('Algorithm') ?? ''))) return true;
  return list('DigestMethod').some((e) => (e.parentNode as Element | null)?.localName === 'Reference' && e.getAttribute('Algorithm') === WEAK_DIGEST);
}

/** Largest SAMLResponse accepted (base64 characters). */
export const MAX_SAML_RESPONSE_LENGTH = 256 * 1024;

/** Refuses DTDs outright: no DOCTYPE, ENTITY, ELEMENT or ATTLIST declarations at all (XXE, billion laughs). */
export function decodeSamlResponse(samlResponse: unknown): { xml: string } | { problem: string } {
  if (typeof samlResponse !== 'string' || samlResponse.length === 0) return { problem: 'the request carries no SAMLResponse' };
  if (samlResponse.length > MAX_SAML_RESPONSE_LENGTH) return { problem: 'the SAMLResponse is too large' };
  if (!/^[A-Za-z0-9+/=\s]+$/.test(samlResponse)) return { problem: 'the SAMLResponse is not base64' };
  const raw = Buffer.from(samlResponse, 'base64');
  if (raw.length >= 2 && ((raw[0] === 0xfe && raw[1] === 0xff) || (raw[0] === 0xff && raw[1] === 0xfe) || raw[0] === 0 || raw[1] === 0)) {
    return { problem: 'the SAMLResponse must be UTF-8 encoded' };
  }
  const xml = raw.toString('utf8');
  if (/<!\s*(DOCTYPE|ENTITY|ELEMENT|ATTLIST)/i.test(xml)) return { problem: 'the SAMLResponse contains a DOCTYPE or entity declaration' };
  if (weakSignature(xml)) return { problem: 'the SAMLResponse is signed with SHA-1; configure the IdP to sign with SHA-256' };
  return { xml };
}

function parse(xml: string): Document | undefined {
  let failed = false;
  const doc = new DOMParser({ errorHandler: { warning: () => undefined, error: () => { failed = true; }, fatalError: () => { failed = true; } } }).parseFromString(xml, 'text/xml');
  return failed ? undefined : (doc as unknown as Document);
}

function children(parent: Element, ns: string, local: string): Element[] {
  const out: Element[] = [];
  for (let n = parent.firstChild; n; n = n.nextSibling) {
    if (n.nodeType === 1 && (n as Element).namespaceURI === ns && (n as Element).localName === local) out.push(n as Element);
  }
  return out;
}

const SUCCESS = 'urn:oasis:names:tc:SAML:2.0:status:Success';
const shortStatus = (v: string) => v.replace(/^urn:oasis:names:tc:SAML:2\.0:status:/, '').slice(0, 100);

/**
 * The top-level StatusCode must be Success. node-saml only looks at the status when the response
 * carries no assertion, so an IdP (or anyone replaying its signed assertion) could wrap a valid
 * assertion in a failed response and still sign someone in. Read before the signature is checked:
 * it can only refuse, never accept. Returns the public part (status codes) and the full reason.
 */
export function statusProblem(xml: string): { status: string; reason: string } | undefined {
  const r = parse(xml)?.documentElement;
  if (!r || r.namespaceURI !== NS_SAMLP || r.localName !== 'Response') return undefined; // node-saml refuses it with its own reason
  const status = children(r, NS_SAMLP, 'Status');
  if (status.length !== 1) return { status: 'none', reason: 'the response carries no single Status' };
  const top = children(status[0], NS_SAMLP, 'StatusCode');
  const value = top[0]?.getAttribute('Value')?.trim() ?? '';
  if (top.length === 1 && value === SUCCESS) return undefined;
  const second = top[0] ? children(top[0], NS_SAMLP, 'StatusCode')[0]?.getAttribute('Value')?.trim() : undefined;
  const code = [value || 'missing', ...(second ? [second] : [])].map(shortStatus).join('/');
  const message = children(status[0], NS_SAMLP, 'StatusMessage')[0]?.textContent?.trim().slice(0, 200);
  return { status: code, reason: `the response status is not Success but ${code}${message ? ` (${message})` : ''}` };
}

export interface AssertionFacts {
  issuer?: string;
  recipients: string[];
  subjectInResponseTo: string[];
}

/** Reads issuer and bearer SubjectConfirmationData of a verified assertion. */
export function assertionFacts(assertionXml: string): AssertionFacts | undefined {
  const doc = parse(assertionXml);
  const a = doc?.documentElement;
  if (!a || a.namespaceURI !== NS_SAML || a.localName !== 'Assertion') return undefined;
  const issuer = children(a, NS_SAML, 'Issuer')[0]?.textContent?.trim();
  const recipients: string[] = [];
  const subjectInResponseTo: string[] = [];
  for (const subject of children(a, NS_SAML, 'Subject')) {
    for (const sc of children(subject, NS_SAML, 'SubjectConfirmation')) {
      if (sc.getAttribute('Method') !== BEARER) continue;
      for (const scd of children(sc, NS_SAML, 'SubjectConfirmationData')) {
        recipients.push(scd.getAttribute('Recipient') ?? '');
        const irt = scd.getAttribute('InResponseTo');
        if (irt) subjectInResponseTo.push(irt);
      }
    }
  }
  return { issuer, recipients, subjectInResponseTo };
}

export interface ExpectedResponse {
  acsUrl: string;
  idpEntityId?: string;
  /** The request ID this response must answer; undefined for an accepted unsolicited response. */
  inResponseTo?: string;
}

/** The application-level checks on a response node-saml accepted. Returns a reason or undefined. */
export function responseProblem(responseXml: string, assertionXml: string, expected: ExpectedResponse): string | undefined {
  const doc = parse(responseXml);
  const r = doc?.documentElement;
  if (!r || r.namespaceURI !== NS_SAMLP || r.localName !== 'Response') return 'the message is not a SAML Response';
  const destination = r.getAttribute('Destination');
  if (destination !== null && destination !== '' && destination !== expected.acsUrl) return 'the response is addressed to another destination';

  const facts = assertionFacts(assertionXml);
  if (!facts) return 'the signed assertion cannot be read';
  if (expected.idpEntityId !== undefined && facts.issuer !== expected.idpEntityId) return 'the assertion is from another issuer';
  if (facts.recipients.length === 0) return 'the assertion has no bearer subject confirmation';
  if (facts.recipients.some((rcpt) => rcpt !== expected.acsUrl)) return 'the assertion is for another recipient';
  if (expected.inResponseTo !== undefined) {
    if (facts.subjectInResponseTo.length === 0) return 'the signed assertion does not name the request it answers';
    if (facts.subjectInResponseTo.some((id) => id !== expected.inResponseTo)) return 'the signed assertion answers another request';
  }
  return undefined;
}
