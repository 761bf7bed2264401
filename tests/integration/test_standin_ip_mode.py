"""Tencent's clients in IP/Port mode (the README's way to reach the stand-in) name no bucket in their Host:
presigned URLs made that way reach the configured bucket, as `superres local` configures it; without one the
stand-in says what is missing. A 304 answers as HTTP says (the headers of a 200, Content-Length included)."""

from __future__ import annotations

import requests
import xmltodict

from superres.standin import StandIn, StandinSettings


def test_presigned_urls_in_ip_mode_reach_the_configured_bucket(tmp_path):  # type: ignore[no-untyped-def]
    with StandIn(StandinSettings(data_dir=tmp_path)) as plain:
        bucket = plain.create_bucket("photos")
    settings = StandinSettings(data_dir=tmp_path, default_bucket=bucket)
    with StandIn(settings) as standin:
        cos = standin.client()
        cos.put_object(Bucket=bucket, Key="dir/a b.txt", Body=b"hello")
        url = cos.get_presigned_url(Bucket=bucket, Key="dir/a b.txt", Method="GET")
        assert url.startswith(standin.endpoint_url)
        assert requests.get(url, timeout=10).content == b"hello"
        put_url = cos.get_presigned_url(Bucket=bucket, Key="up.txt", Method="PUT")
        assert requests.put(put_url, data=b"via url", timeout=10).status_code == 200
        assert cos.get_object(Bucket=bucket, Key="up.txt")["Body"].get_raw_stream().read() == b"via url"


def test_without_a_configured_bucket_an_address_host_is_invalid_uri(tmp_path):  # type: ignore[no-untyped-def]
    with StandIn(StandinSettings(data_dir=tmp_path)) as standin:
        bucket = standin.create_bucket("photos")
        url = standin.client().get_presigned_url(Bucket=bucket, Key="a.txt", Method="GET")
        response = requests.get(url, timeout=10)
        assert response.status_code == 400
        assert xmltodict.parse(response.content)["Error"]["Code"] == "InvalidURI"


def test_a_304_carries_content_length_and_the_sdk_reads_it(standin, cos, bucket: str):  # type: ignore[no-untyped-def]
    cos.put_object(Bucket=bucket, Key="c.txt", Body=b"0123456789")
    etag = cos.head_object(Bucket=bucket, Key="c.txt")["ETag"]
    host = standin.settings.bucket_host(bucket)
    headers = {"Host": host, "If-None-Match": etag}
    headers["Authorization"] = cos.get_auth(Method="GET", Bucket=bucket, Key="c.txt", Headers=headers)
    response = requests.get(f"{standin.endpoint_url}/c.txt", headers=headers, timeout=10)
    assert response.status_code == 304
    assert response.headers["Content-Length"] == "10"
    assert response.headers["ETag"] == etag
    assert response.content == b""
