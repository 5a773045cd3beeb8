// Decodes the fields of an X.509 certificate (PEM) for display: subject, issuer, serial,
// validity, public key, signature algorithm and the extensions this service writes. Read-only
// and forgiving: an extension it does not know is shown as hex, never interpreted.

const OID_NAMES = {
  '2.5.4.3': 'CN', '2.5.4.6': 'C', '2.5.4.7': 'L', '2.5.4.8': 'ST', '2.5.4.10': 'O',
  '2.5.4.11': 'OU', '1.2.840.113549.1.9.1': 'emailAddress',
  '1.2.840.10045.2.1': 'EC', '1.2.840.10045.3.1.7': 'P-256', '1.3.132.0.34': 'P-384',
  '1.2.840.113549.1.1.1': 'RSA', '1.3.101.112': 'Ed25519',
  '1.2.840.10045.4.3.2': 'ecdsa-with-SHA256', '1.2.840.10045.4.3.3': 'ecdsa-with-SHA384',
  '1.2.840.113549.1.1.11': 'sha256WithRSAEncryption',
  '1.2.840.113549.1.1.12': 'sha384WithRSAEncryption',
  '2.5.29.14': 'Subject Key Identifier', '2.5.29.15': 'Key Usage',
  '2.5.29.17': 'Subject Alternative Name', '2.5.29.19': 'Basic Constraints',
  '2.5.29.31': 'CRL Distribution Points', '2.5.29.35': 'Authority Key Identifier',
  '2.5.29.37': 'Extended Key Usage',
  '1.3.6.1.5.5.7.3.1': 'serverAuth', '1.3.6.1.5.5.7.3.2': 'clientAuth',
};
const KEY_USAGES = ['digitalSignature', 'contentCommitment', 'keyEncipherment',
  'dataEncipherment', 'keyAgreement', 'keyCertSign', 'cRLSign', 'encipherOnly', 'decipherOnly'];

function pemToBytes(pem) {
  const base64 = pem.replace(/-----(BEGIN|END) [A-Z ]+-----/g, '').replace(/\s+/g, '');
  return Uint8Array.from(atob(base64), (char) => char.charCodeAt(0));
}

function node(bytes, offset) {
  const tag = bytes[offset];
  let length = bytes[offset + 1];
  let start = offset + 2;
  if (length & 0x80) {
    const count = length & 0x7f;
    length = 0;
    for (let index = 0; index < count; index += 1) length = length * 256 + bytes[start + index];
    start += count;
  }
  if (start + length > bytes.length) throw new Error('truncated DER');
  return { bytes, tag, start, end: start + length };
}

function children(parent) {
  const found = [];
  for (let offset = parent.start; offset < parent.end;) {
    const child = node(parent.bytes, offset);
    found.push(child);
    offset = child.end;
  }
  return found;
}

const content = (item) => item.bytes.subarray(item.start, item.end);
const hex = (bytes, separator = '') =>
  Array.from(bytes, (byte) => byte.toString(16).padStart(2, '0')).join(separator);

function oid(item) {
  const bytes = content(item);
  const parts = [Math.floor(bytes[0] / 40), bytes[0] % 40];
  let value = 0;
  for (const byte of bytes.subarray(1)) {
    value = value * 128 + (byte & 0x7f);
    if (!(byte & 0x80)) {
      parts.push(value);
      value = 0;
    }
  }
  return parts.join('.');
}

const oidName = (item) => OID_NAMES[oid(item)] || oid(item);
const text = (item) => new TextDecoder().decode(content(item));

function time(item) {
  const value = text(item);
  const full = item.tag === 0x17 ? (Number(value.slice(0, 2)) < 50 ? '20' : '19') + value : value;
  const [, year, month, day, hour, minute, second] = full.match(
    /^(\d{4})(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)/,
  );
  return `${year}-${month}-${day}T${hour}:${minute}:${second}Z`;
}

function distinguishedName(name) {
  return children(name)
    .flatMap((set) => children(set))
    .map((pair) => {
      const [type, value] = children(pair);
      return `${oidName(type)}=${text(value)}`;
    })
    .join(', ');
}

function publicKey(info) {
  const [algorithm, bits] = children(info);
  const [kind, parameters] = children(algorithm);
  const name = oidName(kind);
  if (name === 'EC' && parameters) return `EC ${oidName(parameters)}`;
  if (name === 'RSA') {
    const key = node(bits.bytes, bits.start + 1);
    const modulus = content(children(key)[0]);
    const significant = modulus[0] === 0 ? modulus.subarray(1) : modulus;
    return `RSA ${(significant.length - 1) * 8 + Math.floor(Math.log2(significant[0])) + 1} bits`;
  }
  return name;
}

function generalNames(sequence) {
  return children(sequence).map((name) => {
    if (name.tag === 0x82) return `DNS:${text(name)}`;
    if (name.tag === 0x86) return `URI:${text(name)}`;
    if (name.tag === 0x87) {
      const bytes = content(name);
      if (bytes.length === 4) return `IP:${Array.from(bytes).join('.')}`;
      const groups = [];
      for (let index = 0; index < bytes.length; index += 2) {
        groups.push(((bytes[index] << 8) | bytes[index + 1]).toString(16));
      }
      return `IP:${groups.join(':')}`;
    }
    return `[${name.tag}] ${hex(content(name))}`;
  });
}

function uris(item) {
  if (item.tag === 0x86) return [text(item)];
  if (!(item.tag & 0x20)) return [];
  return children(item).flatMap(uris);
}

function extensionValue(id, value) {
  switch (id) {
    case '2.5.29.19': {
      const parts = children(value);
      const isCa = parts.length > 0 && parts[0].tag === 0x01 && content(parts[0])[0] !== 0;
      const pathLength = parts.find((part) => part.tag === 0x02);
      if (!isCa) return 'CA: false';
      return pathLength ? `CA: true, path length ${content(pathLength)[0]}` : 'CA: true';
    }
    case '2.5.29.15': {
      const bits = content(value);
      return KEY_USAGES.filter((_, index) => bits[1 + (index >> 3)] & (0x80 >> (index & 7)))
        .join(', ');
    }
    case '2.5.29.37':
      return children(value).map(oidName).join(', ');
    case '2.5.29.17':
      return generalNames(value).join(', ');
    case '2.5.29.14':
      return hex(content(value), ':');
    case '2.5.29.35': {
      const keyId = children(value).find((part) => part.tag === 0x80);
      return keyId ? hex(content(keyId), ':') : '';
    }
    case '2.5.29.31':
      return uris(value).join(', ');
    default:
      return hex(content(value), ':');
  }
}

function extensions(tagged) {
  return children(children(tagged)[0]).map((extension) => {
    const parts = children(extension);
    const id = oid(parts[0]);
    const critical = parts.length === 3 && content(parts[1])[0] !== 0;
    const wrapped = parts[parts.length - 1];
    let value;
    try {
      value = extensionValue(id, node(wrapped.bytes, wrapped.start));
    } catch {
      value = hex(content(wrapped), ':');
    }
    return { name: OID_NAMES[id] || id, critical, value };
  });
}

export function decodeCertificate(pem) {
  const bytes = pemToBytes(pem);
  const [tbs, signature] = children(node(bytes, 0));
  const fields = children(tbs);
  const version = fields[0].tag === 0xa0 ? content(children(fields[0])[0])[0] + 1 : 1;
  const rest = fields[0].tag === 0xa0 ? fields.slice(1) : fields;
  const [serial, , issuer, validity, subject, keyInfo, ...optional] = rest;
  const [notBefore, notAfter] = children(validity);
  const tagged = optional.find((item) => item.tag === 0xa3);
  return {
    version,
    serial: hex(content(serial)).replace(/^(00)+(?=.)/, ''),
    issuer: distinguishedName(issuer),
    subject: distinguishedName(subject),
    notBefore: time(notBefore),
    notAfter: time(notAfter),
    publicKey: publicKey(keyInfo),
    signatureAlgorithm: oidName(children(signature)[0]),
    extensions: tagged ? extensions(tagged) : [],
  };
}
