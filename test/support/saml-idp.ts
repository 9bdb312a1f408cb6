/**
 * A small SAML 2.0 identity provider for tests, built on the same XML libraries the service provider
 * uses (xml-crypto for XML-DSig, xml-encryption for EncryptedAssertion, @xmldom/xmldom for parsing).
 *
 * It listens on 127.0.0.1:<random port>, receives AuthnRequests by the HTTP-Redirect binding at
 * /sso and answers with an auto-submitting HTTP-POST form to the SP's assertion consumer, exactly as
 * a real IdP does in a browser. Tests that do not need a browser call `respond()` directly.
 *
 * Every attack case the SP must refuse can be produced: unsigned, tampered after signing, signature
 * wrapping, wrong audience/recipient/destination/issuer, expired or not yet valid, unsolicited, signed
 * with another key, DOCTYPE with entities; and encrypted assertions for the positive case.
 */
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { inflateRawSync } from 'node:zlib';
import { DOMParser } from '@xmldom/xmldom';
import { SignedXml } from 'xml-crypto';
import * as xmlenc from 'xml-encryption';
import { makeKeyAndCert, type KeyAndCert } from './certs';

const NS_SAMLP = 'urn:oasis:names:tc:SAML:2.0:protocol';
const NS_SAML = 'urn:oasis:names:tc:SAML:2.0:assertion';
const SUCCESS = 'urn:oasis:names:tc:SAML:2.0:status:Success';
const EMAIL_FORMAT = 'urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress';

export interface IdpUser {
  nameId: string;
  nameIdFormat?: string;
  /** Attribute name → value(s), e.g. { email: 'a@example.com', userName: 'alice' }. */
  attributes?: Record<string, string | string[]>;
}

export interface ParsedAuthnRequest {
  id: string;
  acsUrl: string;
  issuer: string;
  destination?: string;
}

export interface ResponseOptions {
  user: IdpUser;
  /** The SP's AuthnRequest ID; null sends an unsolicited response (no InResponseTo at all). */
  inResponseTo: string | null;
  /** Where the response is posted (the SP's ACS). */
  acsUrl: string;
  /** Defaults to the SP entity ID given to the IdP. */
  audience?: string;
  /** SubjectConfirmationData/@Recipient; defaults to acsUrl. */
  recipient?: string;
  /** Response/@Destination; defaults to acsUrl; null omits it. */
  destination?: string | null;
  /** Issuer of response and assertion; defaults to the IdP entity ID. */
  issuer?: string;
  /** Conditions/@NotBefore relative to now, seconds (default -60). */
  notBeforeSec?: number;
  /** Conditions/@NotOnOrAfter and SubjectConfirmationData/@NotOnOrAfter relative to now (default 300). */
  notOnOrAfterSec?: number;
  /** Which elements carry an XML signature (default 'assertion'). */
  sign?: 'assertion' | 'response' | 'both' | 'none';
  /** Sign with RSA-SHA1 and a SHA-1 digest (legacy IdPs). */
  sha1?: boolean;
  /** Sign with another key pair (e.g. an attacker's, or the IdP's next certificate). */
  signWith?: KeyAndCert;
  /** Change the NameID after signing, so the digest no longer matches. */
  tamper?: string;
  /** Signature wrapping: add an unsigned assertion for `wrapUser` next to / around the signed one. */
  wrap?: 'extra-assertion' | 'moved-signed-assertion' | 'evil-first-assertion-in-extensions';
  wrapUser?: IdpUser;
  /** Encrypt the (signed) assertion to this SP certificate → EncryptedAssertion. */
  encryptFor?: string;
  /** Prepend a DOCTYPE with an internal entity used in the NameID. */
  doctype?: boolean;
  /** A non-success top-level status code (no assertion is sent unless keepAssertion). */
  status?: string;
  /** With `status`: send the signed assertion all the same (a broken or hostile IdP). */
  keepAssertion?: boolean;
}

export interface StartOptions {
  entityId?: string;
  /** The SP's entity ID (default audience). */
  spEntityId: string;
  /** Key pair the IdP signs with (default: a fresh one). */
  signing?: KeyAndCert;
}

const esc = (s: string): string =>
  s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
const iso = (offsetSec: number): string => new Date(Date.now() + offsetSec * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z');
const newId = (): string => '_' + randomBytes(20).toString('hex');

export class TestIdp {
  /** Who signs in at the next browser visit to /sso, and how the response is built. */
  loginAs: IdpUser | undefined;
  nextOptions: Partial<Omit<ResponseOptions, 'user' | 'acsUrl' | 'inResponseTo'>> & { inResponseTo?: string | null } = {};
  /** AuthnRequests received over HTTP, newest last. */
  readonly received: ParsedAuthnRequest[] = [];

  private constructor(
    private readonly server: Server,
    readonly baseUrl: string,
    readonly entityId: string,
    readonly spEntityId: string,
    readonly signing: KeyAndCert,
  ) {}

  static async start(opts: StartOptions): Promise<TestIdp> {
    const signing = opts.signing ?? makeKeyAndCert('test-idp');
    let idp: TestIdp | undefined;
    const server = createServer((req, res) => {
      idp!.handle(req, res).catch((err: unknown) => {
        res.statusCode = 500;
        res.end(String(err));
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    const baseUrl = `http://127.0.0.1:${port}`;
    idp = new TestIdp(server, baseUrl, opts.entityId ?? `${baseUrl}/metadata`, opts.spEntityId, signing);
    return idp;
  }

  get ssoUrl(): string {
    return `${this.baseUrl}/sso`;
  }

  get cert(): string {
    return this.signing.cert;
  }

  /** IdP metadata (EntityDescriptor with the signing certificate and the redirect-binding SSO URL). */
  metadata(extraCerts: string[] = []): string {
    const keyDescriptors = [this.signing.cert, ...extraCerts]
      .map(
        (c) =>
          `<md:KeyDescriptor use="signing"><ds:KeyInfo xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:X509Data><ds:X509Certificate>${pemBody(c)}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>`,
      )
      .join('');
    return (
      `<?xml version="1.0"?>` +
      `<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" entityID="${esc(this.entityId)}">` +
      `<md:IDPSSODescriptor WantAuthnRequestsSigned="false" protocolSupportEnumeration="${NS_SAMLP}">` +
      keyDescriptors +
      `<md:NameIDFormat>${EMAIL_FORMAT}</md:NameIDFormat>` +
      `<md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="${esc(this.ssoUrl)}"/>` +
      `</md:IDPSSODescriptor></md:EntityDescriptor>`
    );
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  /** Decodes an AuthnRequest from a redirect-binding URL (the SP's Location header). */
  static parseRedirect(location: string): { request: ParsedAuthnRequest; relayState?: string } {
    const url = new URL(location);
    const samlRequest = url.searchParams.get('SAMLRequest');
    if (!samlRequest) throw new Error('no SAMLRequest in redirect URL');
    const xml = inflateRawSync(Buffer.from(samlRequest, 'base64')).toString('utf8');
    const doc = new DOMParser().parseFromString(xml, 'text/xml');
    const root = doc.documentElement;
    if (!root || root.localName !== 'AuthnRequest') throw new Error('not an AuthnRequest');
    const issuer = root.getElementsByTagNameNS(NS_SAML, 'Issuer')[0]?.textContent ?? '';
    return {
      request: {
        id: root.getAttribute('ID') ?? '',
        acsUrl: root.getAttribute('AssertionConsumerServiceURL') ?? '',
        destination: root.getAttribute('Destination') ?? undefined,
        issuer,
      },
      relayState: url.searchParams.get('RelayState') ?? undefined,
    };
  }

  /** Builds the base64 SAMLResponse the IdP would post for `request`. */
  async respond(request: ParsedAuthnRequest, user: IdpUser, overrides: Partial<ResponseOptions> = {}): Promise<string> {
    const xml = await this.buildResponseXml({ user, inResponseTo: request.id, acsUrl: request.acsUrl, ...overrides });
    return Buffer.from(xml, 'utf8').toString('base64');
  }

  /** The response XML for the given options (exposed for tests that inspect it). */
  async buildResponseXml(o: ResponseOptions): Promise<string> {
    const signer = o.signWith ?? this.signing;
    const issuer = o.issuer ?? this.entityId;
    const sign = o.sign ?? 'assertion';
    const responseId = newId();
    const destination = o.destination === undefined ? o.acsUrl : o.destination;
    const inResponseTo = o.inResponseTo === null ? '' : ` InResponseTo="${esc(o.inResponseTo)}"`;

    const head =
      `<samlp:Response xmlns:samlp="${NS_SAMLP}" xmlns:saml="${NS_SAML}" ID="${responseId}" Version="2.0" IssueInstant="${iso(0)}"` +
      (destination !== null ? ` Destination="${esc(destination)}"` : '') +
      `${inResponseTo}><saml:Issuer>${esc(issuer)}</saml:Issuer>`;

    if (o.status && !o.keepAssertion) {
      const body = `<samlp:Status><samlp:StatusCode Value="${esc(o.status)}"/></samlp:Status>`;
      return head + body + `</samlp:Response>`;
    }

    const assertion = this.assertionXml(o, o.user, issuer);
    let assertionPart = sign === 'assertion' || sign === 'both' ? signElement(assertion.xml, assertion.id, signer, o.sha1) : assertion.xml;
    if (o.encryptFor) {
      const encrypted = await new Promise<string>((resolve, reject) =>
        xmlenc.encrypt(
          assertionPart,
          {
            rsa_pub: o.encryptFor!,
            pem: o.encryptFor!,
            encryptionAlgorithm: 'http://www.w3.org/2009/xmlenc11#aes256-gcm',
            keyEncryptionAlgorithm: 'http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p',
          },
          (err, result) => (err || !result ? reject(err ?? new Error('encryption failed')) : resolve(result)),
        ),
      );
      assertionPart = `<saml:EncryptedAssertion>${encrypted}</saml:EncryptedAssertion>`;
    }

    const status = `<samlp:Status><samlp:StatusCode Value="${esc(o.status ?? SUCCESS)}"/></samlp:Status>`;
    let body: string;
    if (o.wrap) {
      const evil = this.assertionXml(o, o.wrapUser ?? { nameId: 'mallory@example.com' }, issuer);
      if (o.wrap === 'extra-assertion') {
        body = status + evil.xml + assertionPart;
      } else if (o.wrap === 'moved-signed-assertion') {
        // XSW: the signed assertion hides in Extensions, the evil one carries a copy of its signature.
        const sigMatch = /<ds:Signature[\s\S]*<\/ds:Signature>/.exec(assertionPart);
        const evilWithSig = sigMatch ? evil.xml.replace('</saml:Issuer>', `</saml:Issuer>${sigMatch[0]}`) : evil.xml;
        body = `<samlp:Extensions>${assertionPart}</samlp:Extensions>` + status + evilWithSig;
      } else {
        // The evil assertion reuses the signed assertion's ID, so a by-ID lookup may find either.
        const evilSameId = evil.xml.replace(`ID="${evil.id}"`, `ID="${assertion.id}"`);
        body = `<samlp:Extensions>${evilSameId}</samlp:Extensions>` + status + assertionPart;
      }
    } else {
      body = status + assertionPart;
    }
    let xml = head + body + `</samlp:Response>`;
    if (sign === 'response' || sign === 'both') xml = signElement(xml, responseId, signer, o.sha1);
    if (o.tamper) {
      xml = xml.replace(`>${esc(o.user.nameId)}</saml:NameID>`, `>${esc(o.tamper)}</saml:NameID>`);
    }
    if (o.doctype) {
      xml = `<?xml version="1.0"?><!DOCTYPE samlp:Response [<!ENTITY who "${esc(o.user.nameId)}">]>` + xml.replace(`>${esc(o.user.nameId)}</saml:NameID>`, '>&who;</saml:NameID>');
    }
    return xml;
  }

  private assertionXml(o: ResponseOptions, user: IdpUser, issuer: string): { id: string; xml: string } {
    const id = newId();
    const notBefore = iso(o.notBeforeSec ?? -60);
    const notOnOrAfter = iso(o.notOnOrAfterSec ?? 300);
    const inResponseTo = o.inResponseTo === null ? '' : ` InResponseTo="${esc(o.inResponseTo)}"`;
    const attrs = Object.entries(user.attributes ?? {})
      .map(([name, value]) => {
        const values = (Array.isArray(value) ? value : [value]).map((v) => `<saml:AttributeValue>${esc(v)}</saml:AttributeValue>`).join('');
        return `<saml:Attribute Name="${esc(name)}">${values}</saml:Attribute>`;
      })
      .join('');
    const xml =
      `<saml:Assertion xmlns:saml="${NS_SAML}" ID="${id}" Version="2.0" IssueInstant="${iso(0)}">` +
      `<saml:Issuer>${esc(issuer)}</saml:Issuer>` +
      `<saml:Subject><saml:NameID Format="${esc(user.nameIdFormat ?? EMAIL_FORMAT)}">${esc(user.nameId)}</saml:NameID>` +
      `<saml:SubjectConfirmation Method="urn:oasis:names:tc:SAML:2.0:cm:bearer">` +
      `<saml:SubjectConfirmationData${inResponseTo} NotOnOrAfter="${notOnOrAfter}" Recipient="${esc(o.recipient ?? o.acsUrl)}"/>` +
      `</saml:SubjectConfirmation></saml:Subject>` +
      `<saml:Conditions NotBefore="${notBefore}" NotOnOrAfter="${notOnOrAfter}">` +
      `<saml:AudienceRestriction><saml:Audience>${esc(o.audience ?? this.spEntityId)}</saml:Audience></saml:AudienceRestriction></saml:Conditions>` +
      `<saml:AuthnStatement AuthnInstant="${iso(0)}" SessionIndex="${newId()}"><saml:AuthnContext>` +
      `<saml:AuthnContextClassRef>urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport</saml:AuthnContextClassRef>` +
      `</saml:AuthnContext></saml:AuthnStatement>` +
      (attrs ? `<saml:AttributeStatement>${attrs}</saml:AttributeStatement>` : '') +
      `</saml:Assertion>`;
    return { id, xml };
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', this.baseUrl);
    if (url.pathname === '/metadata') {
      res.setHeader('Content-Type', 'application/samlmetadata+xml');
      res.end(this.metadata());
      return;
    }
    if (url.pathname !== '/sso' || req.method !== 'GET') {
      res.statusCode = 404;
      res.end('not found');
      return;
    }
    const { request, relayState } = TestIdp.parseRedirect(url.toString());
    this.received.push(request);
    if (request.destination && request.destination !== this.ssoUrl) {
      res.statusCode = 400;
      res.end('AuthnRequest Destination does not name this IdP');
      return;
    }
    if (!this.loginAs) {
      res.statusCode = 403;
      res.end('test IdP: no user set to sign in');
      return;
    }
    const { inResponseTo, ...rest } = this.nextOptions;
    const xml = await this.buildResponseXml({
      user: this.loginAs,
      acsUrl: request.acsUrl,
      inResponseTo: inResponseTo === undefined ? request.id : inResponseTo,
      ...rest,
    });
    const samlResponse = Buffer.from(xml, 'utf8').toString('base64');
    res.setHeader('Content-Type', 'text/html; charset=utf-8');
    res.setHeader('Cache-Control', 'no-store');
    res.end(
      `<!doctype html><html><head><title>Test IdP</title></head><body>` +
        `<form method="post" action="${esc(request.acsUrl)}">` +
        `<input type="hidden" name="SAMLResponse" value="${esc(samlResponse)}">` +
        (relayState !== undefined ? `<input type="hidden" name="RelayState" value="${esc(relayState)}">` : '') +
        `<noscript><button type="submit">Continue</button></noscript></form>` +
        `<script>document.forms[0].submit()</script></body></html>`,
    );
  }
}

function pemBody(pem: string): string {
  return pem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, '');
}

/** Enveloped XML-DSig (RSA-SHA256, exclusive c14n) of the element with `id`, placed after its Issuer. */
function signElement(xml: string, id: string, keys: KeyAndCert, sha1 = false): string {
  const sig = new SignedXml({
    privateKey: keys.key,
    publicCert: keys.cert,
    signatureAlgorithm: sha1 ? 'http://www.w3.org/2000/09/xmldsig#rsa-sha1' : 'http://www.w3.org/2001/04/xmldsig-more#rsa-sha256',
    canonicalizationAlgorithm: 'http://www.w3.org/2001/10/xml-exc-c14n#',
  });
  sig.addReference({
    xpath: `//*[@ID='${id}']`,
    digestAlgorithm: sha1 ? 'http://www.w3.org/2000/09/xmldsig#sha1' : 'http://www.w3.org/2001/04/xmlenc#sha256',
    transforms: ['http://www.w3.org/2000/09/xmldsig#enveloped-signature', 'http://www.w3.org/2001/10/xml-exc-c14n#'],
  });
  sig.computeSignature(xml, {
    prefix: 'ds',
    location: { reference: `//*[@ID='${id}']/*[local-name(.)='Issuer']`, action: 'after' },
  });
  return sig.getSignedXml();
}
