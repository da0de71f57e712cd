"""Build KMIP messages with the PyKMIP library (an independent encoder) and print them as
JSON lines {"name": ..., "hex": ...}. interop-tests/tests/it/pykmip_codec.rs checks that our codec
decodes each and re-encodes it to identical bytes."""
import json
import time

from kmip.core import enums, objects, primitives, attributes, misc
from kmip.core import utils
from kmip.core.factories.attributes import AttributeFactory
from kmip.core.messages import contents, messages, payloads
from kmip.pie import factory, objects as pie

F = AttributeFactory()
V12 = enums.KMIPVersion.KMIP_1_2
V14 = enums.KMIPVersion.KMIP_1_4
V20 = enums.KMIPVersion.KMIP_2_0
NOW = 1_700_000_000


def attr(kind, value):
    return F.create_attribute(kind, value)


def template(tag=enums.Tags.TEMPLATE_ATTRIBUTE, *attrs):
    return objects.TemplateAttribute(attributes=list(attrs), tag=tag)


def pv(version):
    major, minor = {V12: (1, 2), V14: (1, 4), V20: (2, 0)}[version]
    return contents.ProtocolVersion(major, minor)


def request(op, payload, version):
    header = messages.RequestHeader(
        protocol_version=pv(version), batch_count=contents.BatchCount(1)
    )
    item = messages.RequestBatchItem(operation=contents.Operation(op), request_payload=payload)
    return messages.RequestMessage(request_header=header, batch_items=[item])


def response(op, payload, version):
    header = messages.ResponseHeader(
        protocol_version=pv(version),
        time_stamp=contents.TimeStamp(NOW),
        batch_count=contents.BatchCount(1),
    )
    item = messages.ResponseBatchItem(
        operation=contents.Operation(op),
        result_status=contents.ResultStatus(enums.ResultStatus.SUCCESS),
        response_payload=payload,
    )
    return messages.ResponseMessage(response_header=header, batch_items=[item])


def failure(op, version):
    header = messages.ResponseHeader(
        protocol_version=pv(version),
        time_stamp=contents.TimeStamp(NOW),
        batch_count=contents.BatchCount(1),
    )
    item = messages.ResponseBatchItem(
        operation=contents.Operation(op),
        result_status=contents.ResultStatus(enums.ResultStatus.OPERATION_FAILED),
        result_reason=contents.ResultReason(enums.ResultReason.ITEM_NOT_FOUND),
        result_message=contents.ResultMessage("no such object"),
    )
    return messages.ResponseMessage(response_header=header, batch_items=[item])


def core(obj):
    return factory.ObjectFactory().convert(obj)


def main():
    O = enums.Operation
    aes = [
        attr(enums.AttributeType.CRYPTOGRAPHIC_ALGORITHM, enums.CryptographicAlgorithm.AES),
        attr(enums.AttributeType.CRYPTOGRAPHIC_LENGTH, 256),
        attr(
            enums.AttributeType.CRYPTOGRAPHIC_USAGE_MASK,
            [enums.CryptographicUsageMask.ENCRYPT, enums.CryptographicUsageMask.DECRYPT],
        ),
        attr(enums.AttributeType.NAME, "db-master-key"),
    ]
    rsa_common = [
        attr(enums.AttributeType.CRYPTOGRAPHIC_ALGORITHM, enums.CryptographicAlgorithm.RSA),
        attr(enums.AttributeType.CRYPTOGRAPHIC_LENGTH, 2048),
    ]
    sym = core(pie.SymmetricKey(enums.CryptographicAlgorithm.AES, 128, bytes(range(16))))
    cert_der = bytes.fromhex("3082010a0282010100") + bytes(range(200))
    cert = core(pie.X509Certificate(cert_der))
    priv = core(
        pie.PrivateKey(
            enums.CryptographicAlgorithm.RSA, 2048, bytes(range(64)), enums.KeyFormatType.PKCS_8
        )
    )
    out = []

    def add(name, msg, version):
        s = utils.BytearrayStream()
        msg.write(s, kmip_version=version)
        out.append({"name": name, "hex": s.buffer.hex()})

    for v in (V12, V14, V20):
        tag = f"{v.name}"
        add(f"create request {tag}", request(O.CREATE, payloads.CreateRequestPayload(
            object_type=enums.ObjectType.SYMMETRIC_KEY, template_attribute=template(enums.Tags.TEMPLATE_ATTRIBUTE, *aes)), v), v)
        add(f"create response {tag}", response(O.CREATE, payloads.CreateResponsePayload(
            object_type=enums.ObjectType.SYMMETRIC_KEY, unique_identifier="42"), v), v)
        add(f"create key pair request {tag}", request(O.CREATE_KEY_PAIR, payloads.CreateKeyPairRequestPayload(
            common_template_attribute=template(enums.Tags.COMMON_TEMPLATE_ATTRIBUTE, *rsa_common),
            private_key_template_attribute=template(enums.Tags.PRIVATE_KEY_TEMPLATE_ATTRIBUTE,
                attr(enums.AttributeType.CRYPTOGRAPHIC_USAGE_MASK, [enums.CryptographicUsageMask.SIGN])),
            public_key_template_attribute=template(enums.Tags.PUBLIC_KEY_TEMPLATE_ATTRIBUTE,
                attr(enums.AttributeType.CRYPTOGRAPHIC_USAGE_MASK, [enums.CryptographicUsageMask.VERIFY]))), v), v)
        add(f"create key pair response {tag}", response(O.CREATE_KEY_PAIR, payloads.CreateKeyPairResponsePayload(
            private_key_unique_identifier="1", public_key_unique_identifier="2"), v), v)
        for kind, obj, ot in (("symmetric key", sym, enums.ObjectType.SYMMETRIC_KEY),
                              ("private key", priv, enums.ObjectType.PRIVATE_KEY),
                              ("certificate", cert, enums.ObjectType.CERTIFICATE)):
            add(f"register {kind} request {tag}", request(O.REGISTER, payloads.RegisterRequestPayload(
                object_type=ot, template_attribute=template(enums.Tags.TEMPLATE_ATTRIBUTE,
                    attr(enums.AttributeType.NAME, f"registered {kind}")), managed_object=obj), v), v)
            add(f"get {kind} response {tag}", response(O.GET, payloads.GetResponsePayload(
                object_type=ot, unique_identifier="7", secret=obj), v), v)
        add(f"register response {tag}", response(O.REGISTER, payloads.RegisterResponsePayload(unique_identifier="3"), v), v)
        add(f"get request {tag}", request(O.GET, payloads.GetRequestPayload(
            unique_identifier="7", key_format_type=enums.KeyFormatType.RAW), v), v)
        add(f"get attributes request {tag}", request(O.GET_ATTRIBUTES, payloads.GetAttributesRequestPayload(
            unique_identifier="7", attribute_names=["State", "Cryptographic Algorithm", "Name"]), v), v)
        add(f"get attributes response {tag}", response(O.GET_ATTRIBUTES, payloads.GetAttributesResponsePayload(
            unique_identifier="7", attributes=[attr(enums.AttributeType.STATE, enums.State.ACTIVE), aes[0], aes[3]]), v), v)
        add(f"locate request {tag}", request(O.LOCATE, payloads.LocateRequestPayload(
            maximum_items=10, offset_items=2, storage_status_mask=1,
            object_group_member=enums.ObjectGroupMember.GROUP_MEMBER_DEFAULT,
            attributes=[attr(enums.AttributeType.OBJECT_TYPE, enums.ObjectType.SYMMETRIC_KEY), aes[3]]), v), v)
        add(f"locate response {tag}", response(O.LOCATE, payloads.LocateResponsePayload(
            located_items=2, unique_identifiers=["5", "9"]), v), v)
        for op, req, resp in ((O.ACTIVATE, payloads.ActivateRequestPayload, payloads.ActivateResponsePayload),
                              (O.DESTROY, payloads.DestroyRequestPayload, payloads.DestroyResponsePayload)):
            add(f"{op.name} request {tag}", request(op, req(unique_identifier=attributes.UniqueIdentifier("7")), v), v)
            add(f"{op.name} response {tag}", response(op, resp(unique_identifier=attributes.UniqueIdentifier("7")), v), v)
        add(f"revoke request {tag}", request(O.REVOKE, payloads.RevokeRequestPayload(
            unique_identifier=attributes.UniqueIdentifier("7"),
            revocation_reason=objects.RevocationReason(code=enums.RevocationReasonCode.KEY_COMPROMISE, message="leaked"),
            compromise_occurrence_date=primitives.DateTime(NOW - 3600, enums.Tags.COMPROMISE_OCCURRENCE_DATE)), v), v)
        add(f"revoke response {tag}", response(O.REVOKE, payloads.RevokeResponsePayload(
            unique_identifier=attributes.UniqueIdentifier("7")), v), v)
        add(f"query request {tag}", request(O.QUERY, payloads.QueryRequestPayload(
            query_functions=[enums.QueryFunction.QUERY_OPERATIONS, enums.QueryFunction.QUERY_OBJECTS,
                             enums.QueryFunction.QUERY_SERVER_INFORMATION]), v), v)
        add(f"query response {tag}", response(O.QUERY, payloads.QueryResponsePayload(
            operations=[O.CREATE, O.GET, O.QUERY], object_types=[enums.ObjectType.SYMMETRIC_KEY],
            vendor_identification="kmip-rs"), v), v)
        add(f"discover versions request {tag}", request(O.DISCOVER_VERSIONS, payloads.DiscoverVersionsRequestPayload(
            protocol_versions=[contents.ProtocolVersion(2, 0), contents.ProtocolVersion(1, 2)]), v), v)
        add(f"discover versions response {tag}", response(O.DISCOVER_VERSIONS, payloads.DiscoverVersionsResponsePayload(
            protocol_versions=[contents.ProtocolVersion(1, 2)]), v), v)
        add(f"failure response {tag}", failure(O.GET, v), v)
    for line in out:
        print(json.dumps(line))


if __name__ == "__main__":
    main()
