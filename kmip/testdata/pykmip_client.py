#!/usr/bin/python3
"""PyKMIP as an independent KMIP client of the Keyhold server (tests only).

Usage: pykmip_client.py HOST PORT CERT KEY CA VERSION MODE [ARG...]

VERSION is 1.2 or 1.4. MODE is:
  lifecycle            create, register (key, secret data, opaque object),
                       get, locate, get_attributes, get_attribute_list,
                       modify_attribute, delete_attribute, activate, revoke,
                       destroy, and a register and a modify_attribute with a
                       name another object has; prints the results as one
                       JSON object
  get UID              prints {"ok": ...} or {"error": ...}
  create               prints {"ok": uid} or {"error": ...}
  query                prints the operations and object types the server lists
  crypto               create_key_pair (RSA-2048, EC P-256), sign and
                       signature_verify, encrypt and decrypt (AES-CBC with
                       the client's IV and the server's, RSA-OAEP), mac;
                       prints the ids, ciphertexts, IVs, signatures and MACs
                       for the Go test to check with Go's crypto

Names are unique in a scope, so lifecycle and crypto name what they make
after VERSION (both versions run in one scope), and name every object they
register: PyKMIP names an object registered without a name after its type
("Symmetric Key"), which a second one would then repeat.

Failures print {"error": {"reason": ..., "message": ...}} (KMIP failures) or
{"error": {"exception": ...}} (anything else), and exit 0, so that the Go
test decides what is expected. Key material is printed only as hex of the
test's own known keys and as lengths.
"""

import json
import logging
import sys

from kmip.core import enums
from kmip.core import exceptions as core_exceptions
from kmip.core.factories import attributes
from kmip.pie import client as pieclient
from kmip.pie import exceptions
from kmip.pie import objects

logging.disable(logging.CRITICAL)

VERSIONS = {"1.2": enums.KMIPVersion.KMIP_1_2, "1.4": enums.KMIPVersion.KMIP_1_4}
KNOWN_KEY = bytes(range(16))
SECRET = b"correct horse battery staple"
OPAQUE = b"\x00\x01opaque\xff"


def failure(e):
    if isinstance(e, exceptions.KmipOperationFailure):
        return {"error": {"reason": e.reason.name, "message": e.message}}
    return {"error": {"exception": type(e).__name__ + ": " + str(e)}}


def attr_map(attrs):
    out = {}
    for a in attrs:
        name = a.attribute_name.value
        v = a.attribute_value
        if hasattr(v, "value") and not isinstance(v.value, (bytes, list)):
            v = v.value
        if isinstance(v, enums.enum.Enum):
            v = v.name
        elif hasattr(v, "name_value"):
            v = v.name_value.value
        elif not isinstance(v, (str, int, bool)):
            v = str(v)
        out.setdefault(name, []).append(v)
    return out


def lifecycle(c, version):
    r = {}
    f = attributes.AttributeFactory()
    kid = c.create(enums.CryptographicAlgorithm.AES, 256, name="pyk-created-" + version,
                   cryptographic_usage_mask=[enums.CryptographicUsageMask.ENCRYPT,
                                             enums.CryptographicUsageMask.DECRYPT])
    r["created"] = kid
    rid = c.register(objects.SymmetricKey(enums.CryptographicAlgorithm.AES, 128, KNOWN_KEY, name="pyk-registered-" + version))
    r["registered"] = rid
    sid = c.register(objects.SecretData(SECRET, enums.SecretDataType.PASSWORD, name="pyk-secret-" + version))
    oid = c.register(objects.OpaqueObject(OPAQUE, enums.OpaqueDataType.NONE, name="pyk-opaque-" + version))
    # Names are unique in a scope: neither a new object nor a renamed one
    # may take one.
    try:
        c.register(objects.SecretData(SECRET, enums.SecretDataType.PASSWORD, name="pyk-created-" + version))
        r["register_taken_name"] = "succeeded"
    except exceptions.KmipOperationFailure as e:
        r["register_taken_name"] = e.reason.name
    try:
        c.modify_attribute(unique_identifier=rid, attribute=f.create_attribute(enums.AttributeType.NAME, "pyk-secret-" + version))
        r["rename_to_taken_name"] = "succeeded"
    except core_exceptions.OperationFailure as e:  # what modify_attribute raises
        r["rename_to_taken_name"] = e.reason.name

    k = c.get(kid)
    r["created_len"] = len(k.value)
    r["created_alg"] = k.cryptographic_algorithm.name
    r["registered_value"] = c.get(rid).value.hex()
    r["secret_value_matches"] = c.get(sid).value == SECRET
    r["opaque_value_matches"] = c.get(oid).value == OPAQUE

    name = f.create_attribute(enums.AttributeType.NAME, "pyk-registered-" + version)
    r["located_by_name"] = c.locate(attributes=[name])
    alg = f.create_attribute(enums.AttributeType.CRYPTOGRAPHIC_ALGORITHM, enums.CryptographicAlgorithm.AES)
    r["located_aes"] = c.locate(attributes=[alg])
    r["located_first"] = c.locate(maximum_items=1, attributes=[alg])

    uid, attrs = c.get_attributes(kid, ["State", "Cryptographic Length", "Name", "Object Type"])
    r["get_attributes_uid"] = uid
    r["attributes"] = attr_map(attrs)
    r["attribute_list"] = sorted(c.get_attribute_list(kid))

    new_name = f.create_attribute(enums.AttributeType.NAME, "pyk-renamed-" + version)
    c.modify_attribute(unique_identifier=rid, attribute=new_name)
    r["located_renamed"] = c.locate(attributes=[f.create_attribute(enums.AttributeType.NAME, "pyk-renamed-" + version)])
    c.delete_attribute(unique_identifier=rid, attribute_name="Name", attribute_index=0)
    _, attrs = c.get_attributes(rid, ["Name"])
    r["names_after_delete"] = len(attrs)

    c.activate(kid)
    _, attrs = c.get_attributes(kid, ["State"])
    r["state_after_activate"] = attr_map(attrs)["State"][0]
    try:
        c.destroy(kid)
        r["destroy_active"] = "succeeded"
    except exceptions.KmipOperationFailure as e:
        r["destroy_active"] = e.reason.name
    c.revoke(enums.RevocationReasonCode.CESSATION_OF_OPERATION, kid)
    _, attrs = c.get_attributes(kid, ["State"])
    r["state_after_revoke"] = attr_map(attrs)["State"][0]
    c.destroy(kid)
    c.destroy(rid)
    _, attrs = c.get_attributes(kid, ["State", "Destroy Date"])
    m = attr_map(attrs)
    r["state_after_destroy"] = m["State"][0]
    r["has_destroy_date"] = "Destroy Date" in m
    for uid in (sid, oid):
        c.destroy(uid)
    return r


MAC_KEY = bytes(range(32, 64))
MESSAGE = b"signed, encrypted and MACed by PyKMIP"
E = enums


def crypto(c, version):
    r = {}
    # RSA and EC key pairs, made in the server's token.
    for name, alg, bits, params in (
        ("rsa", E.CryptographicAlgorithm.RSA, 2048,
         {"padding_method": E.PaddingMethod.PSS, "hashing_algorithm": E.HashingAlgorithm.SHA_256,
          "cryptographic_algorithm": E.CryptographicAlgorithm.RSA}),
        ("ec", E.CryptographicAlgorithm.EC, 256,
         {"digital_signature_algorithm": E.DigitalSignatureAlgorithm.ECDSA_WITH_SHA256}),
    ):
        pub, priv = c.create_key_pair(
            alg, bits, public_name="pyk-" + name + "-public-" + version, private_name="pyk-" + name + "-private-" + version,
            public_usage_mask=[E.CryptographicUsageMask.VERIFY, E.CryptographicUsageMask.ENCRYPT],
            private_usage_mask=[E.CryptographicUsageMask.SIGN, E.CryptographicUsageMask.DECRYPT])
        c.activate(pub)
        c.activate(priv)
        sig = c.sign(MESSAGE, uid=priv, cryptographic_parameters=params)
        r[name] = {
            "public": pub, "private": priv, "signature": sig.hex(),
            "verified": c.signature_verify(MESSAGE, sig, uid=pub, cryptographic_parameters=params).name,
            "tampered": c.signature_verify(MESSAGE + b"!", sig, uid=pub, cryptographic_parameters=params).name,
        }
    # RSA-OAEP (SHA-1, the hash PyKMIP's own server takes) both ways.
    oaep = {"padding_method": E.PaddingMethod.OAEP, "hashing_algorithm": E.HashingAlgorithm.SHA_1,
            "cryptographic_algorithm": E.CryptographicAlgorithm.RSA}
    ct, _ = c.encrypt(MESSAGE, uid=r["rsa"]["public"], cryptographic_parameters=oaep)
    r["rsa"]["ciphertext"] = ct.hex()
    r["rsa"]["decrypted"] = c.decrypt(ct, uid=r["rsa"]["private"], cryptographic_parameters=oaep) == MESSAGE
    # AES-CBC with a known key: the client's IV, then one the server makes.
    aes = c.register(objects.SymmetricKey(E.CryptographicAlgorithm.AES, 128, KNOWN_KEY, masks=[
        E.CryptographicUsageMask.ENCRYPT, E.CryptographicUsageMask.DECRYPT], name="pyk-aes-" + version))
    c.activate(aes)
    cbc = {"block_cipher_mode": E.BlockCipherMode.CBC, "padding_method": E.PaddingMethod.PKCS5,
           "cryptographic_algorithm": E.CryptographicAlgorithm.AES}
    iv = bytes(range(16))
    ct1, iv1 = c.encrypt(MESSAGE, uid=aes, cryptographic_parameters=cbc, iv_counter_nonce=iv)
    ct2, iv2 = c.encrypt(MESSAGE, uid=aes, cryptographic_parameters=cbc)
    r["aes"] = {"iv": iv.hex(), "ciphertext": ct1.hex(), "returned_iv": iv1.hex() if iv1 else None,
                "server_iv": iv2.hex() if iv2 else None, "server_ciphertext": ct2.hex(),
                "decrypted": c.decrypt(ct2, uid=aes, cryptographic_parameters=cbc, iv_counter_nonce=iv2) == MESSAGE}
    # HMAC-SHA256 with a known key.
    hm = c.register(objects.SymmetricKey(E.CryptographicAlgorithm.HMAC_SHA256, 256, MAC_KEY, masks=[
        E.CryptographicUsageMask.MAC_GENERATE, E.CryptographicUsageMask.MAC_VERIFY], name="pyk-hmac-" + version))
    c.activate(hm)
    uid, mac = c.mac(MESSAGE, uid=hm, algorithm=E.CryptographicAlgorithm.HMAC_SHA256)
    r["mac"] = {"uid": uid, "expected_uid": hm, "mac": mac.hex()}
    # A key without ENCRYPT in its mask is refused.
    mac_only = c.register(objects.SymmetricKey(E.CryptographicAlgorithm.AES, 128, KNOWN_KEY, masks=[
        E.CryptographicUsageMask.MAC_GENERATE], name="pyk-mac-only-" + version))
    c.activate(mac_only)
    try:
        c.encrypt(MESSAGE, uid=mac_only, cryptographic_parameters=cbc, iv_counter_nonce=iv)
        r["mask_refusal"] = "succeeded"
    except exceptions.KmipOperationFailure as e:
        r["mask_refusal"] = e.reason.name
    return r


def main():
    host, port, cert, key, ca, version, mode = sys.argv[1:8]
    args = sys.argv[8:]
    c = pieclient.ProxyKmipClient(hostname=host, port=int(port), cert=cert, key=key, ca=ca,
                                  config_file="/dev/null", kmip_version=VERSIONS[version])
    try:
        c.open()
        if mode == "lifecycle":
            out = {"ok": lifecycle(c, version)}
        elif mode == "get":
            out = {"ok": len(c.get(args[0]).value)}
        elif mode == "crypto":
            out = {"ok": crypto(c, version)}
        elif mode == "create":
            out = {"ok": c.create(enums.CryptographicAlgorithm.AES, 128)}
        else:
            raise ValueError("unknown mode " + mode)
    except Exception as e:  # reported to the Go test, which decides
        out = failure(e)
    finally:
        try:
            c.close()
        except Exception:
            pass
    print(json.dumps(out))


if __name__ == "__main__":
    main()
