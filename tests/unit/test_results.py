from __future__ import annotations

import pytest
from superres_fn import CosCallError, parse_upload_result


def _obj(key, width="128"):
    return {"Key": key, "Location": f"b.cos.r.myqcloud.com/{key}", "Format": "PNG", "Width": width,
            "Height": "96", "Size": "100", "ETag": '"e"'}


def test_single_object_dict_is_parsed():
    result = parse_upload_result({"UploadResult": {"ProcessResults": {"Object": _obj("superres/a.png")}}})
    (obj,) = result.objects
    assert (obj.key, obj.width, obj.height, obj.size, obj.format) == ("superres/a.png", 128, 96, 100, "PNG")


def test_object_list_is_parsed_and_matched_by_key():
    data = {"UploadResult": {"ProcessResults": {"Object": [_obj("x/2.png", "2"), _obj("x/1.png", "1")]}}}
    result = parse_upload_result(data)
    assert result.find("/x/1.png").width == 1
    assert result.find("x/2.png").width == 2
    assert result.find("x/3.png") is None


def test_original_info_with_image_info():
    data = {
        "UploadResult": {
            "OriginalInfo": {"Key": "a.jpg", "ETag": '"1"', "ImageInfo": {"Format": "JPEG", "Width": "64",
                                                                          "Height": "48", "Quality": "90"}},
            "ProcessResults": None,
        }
    }
    result = parse_upload_result(data)
    assert result.objects == ()
    assert (result.original.image.width, result.original.image.format) == (64, "JPEG")


def test_unparseable_numbers_become_none():
    result = parse_upload_result({"ProcessResults": {"Object": {"Key": "k", "Width": "wide", "Size": None}}})
    assert result.objects[0].width is None and result.objects[0].size is None


@pytest.mark.parametrize("data", [None, "xml", 3, {"UploadResult": "text"}])
def test_non_dict_body_is_a_typed_error(data):
    with pytest.raises(CosCallError) as info:
        parse_upload_result(data)
    assert info.value.code == "MalformedResponse"
