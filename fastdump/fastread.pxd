# C types of fastread.py, for Cython's pure-Python mode (see setup.py): the .py
# is the one source of truth, and runs unchanged as plain Python. Only what is
# declared here is typed (annotation_typing is off: an "int" annotation in the
# .py means any Python int, never a C long).
#
# Keep in mind:
# - a cdef function or method is called directly in C, never looked up: a test
#   cannot monkeypatch it, and it takes no keyword arguments it does not declare;
# - module globals declared here are C variables, invisible from Python;
# - C integers overflow silently: tags, lengths and shifted bytes are i64;
# - no bounds checks on cbytes: every index must be inside the buffer (need()).
import cython

ctypedef long long i64  # tags (up to 0xFFFFFFFF), lengths, -1 sentinels
ctypedef const unsigned char* cbytes  # a bytes object's data, read in place

cdef i64 _CHARSET, _PIXEL_REPRESENTATION, _ITEM, _ITEM_END, _SEQUENCE_END, _UNDEFINED
cdef i64 _FIRST_PIXEL_TAG
cdef int _MAX_DEPTH
cdef int _NO_VR, _SHORT, _LONG_VR, _SQ, _UN
cdef dict _RAW_KIND
cdef list _VR_TABLE
cdef bytes _VR_KIND

cdef class RawDataset:
    cdef public list elements
    cdef public object encodings
    cdef public bint implicit, big_endian
    cdef public object from_un, unknown_names

cdef class Header:
    cdef public RawDataset meta, dataset
    cdef public str truncated
    cdef public bint inflated

cdef class _Parser:
    cdef object bulk_vrs, fp, tags
    cdef frozenset stops
    cdef bytes buf, packed_stops
    cdef Py_ssize_t size, base, buf_end, fp_pos, chunk, defer
    cdef i64 bound, skip_bound
    cdef bint saw_element, inflated, fragments, in_cut
    cdef str cut
    cdef Py_ssize_t pixel_at

    @cython.locals(keep=bytes, start=Py_ssize_t, end_buffered=Py_ssize_t, want=Py_ssize_t,
                   data=bytes)
    cdef Py_ssize_t need(self, Py_ssize_t pos, Py_ssize_t n) except -1
    @cython.locals(i=Py_ssize_t)
    cdef bytes value(self, Py_ssize_t pos, Py_ssize_t length)
    cdef Py_ssize_t inflate(self, Py_ssize_t pos) except -1
    @cython.locals(i=Py_ssize_t, b0=int, b1=int)
    cdef bint sniff_implicit(self, Py_ssize_t pos, bint assumed) except -1
    @cython.locals(pos=Py_ssize_t, meta=RawDataset, dataset=RawDataset, big_endian=bint,
                   implicit=bint)
    cdef Header header(self)
    cdef str pixel_data_overrun(self, RawDataset dataset)
    @cython.locals(size=Py_ssize_t, implicit=bint, big=bint, out=list, creators=dict,
                   skipping=bint, bound=i64, previous=i64, seen_sequence=bint, ambiguous=bint,
                   stopped_at=i64, buf=bytes, base=Py_ssize_t, buf_end=Py_ssize_t,
                   i=Py_ssize_t, group=i64, elem=i64, length=i64, vr=str, kind=int, at=Py_ssize_t,
                   vr_kinds=cbytes, tag=i64, head=Py_ssize_t, value_pos=Py_ssize_t, keep=bint,
                   is_creator=bint, sequence=bint, ambiguous_vr=bint, skipped_sequence=bint)
    cdef Py_ssize_t parse(self, RawDataset ds, Py_ssize_t pos, Py_ssize_t end, bint top=*,
                          bint meta_group=*, int depth=*) except -1
    @cython.locals(size=Py_ssize_t, items=list, long=bint)
    cdef tuple cut_value(self, RawDataset ds, i64 tag, str vr, int kind, Py_ssize_t value_pos,
                         i64 length, bint top, int depth)
    @cython.locals(buf=bytes, base=Py_ssize_t, size=Py_ssize_t, stops=frozenset, bound=i64,
                   packed_stops=bytes, last=Py_ssize_t, start=Py_ssize_t, sequence=bint,
                   i=Py_ssize_t, group=i64, elem=i64, length=i64, head=Py_ssize_t, kind=int,
                   tag=i64, after=Py_ssize_t)
    cdef tuple skip_unselected(self, Py_ssize_t pos, i64 previous, bint implicit)
    @cython.locals(items=list, big_endian=bint, length=i64, tag=i64, start=Py_ssize_t,
                   implicit=bint, item=RawDataset)
    cdef tuple items(self, Py_ssize_t pos, Py_ssize_t end, RawDataset parent, int depth)
    @cython.locals(start=Py_ssize_t, length=i64, tag=i64)
    cdef Py_ssize_t items_length(self, Py_ssize_t pos, bint big_endian) except -1
    @cython.locals(i=Py_ssize_t, buf=bytes, group=i64, elem=i64, length=i64)
    cdef (i64, i64) item_head(self, Py_ssize_t pos, bint big_endian) except *
    @cython.locals(private=i64, found=str)
    cdef str resolve_vr(self, i64 tag, str vr, i64 length, Py_ssize_t value_pos,
                        dict creators, object order)

cpdef str decode_text(bytes value, object encodings, bint latin1)

@cython.locals(elem=i64, found=str)
cdef str _private_vr(i64 tag, dict creators)

cdef i64 _get16(cbytes buf, Py_ssize_t i, bint big) noexcept
@cython.locals(b0=i64, b1=i64, b2=i64, b3=i64)
cdef i64 _get32(cbytes buf, Py_ssize_t i, bint big) noexcept
cdef bytes _slice(cbytes buf, Py_ssize_t start, Py_ssize_t stop)
cdef i64 _le16(cbytes buf, Py_ssize_t i) noexcept
@cython.locals(high=i64)
cdef i64 _le32(cbytes buf, Py_ssize_t i) noexcept
@cython.locals(c0=int, c1=int)
cdef Py_ssize_t _vr_index(cbytes buf, Py_ssize_t i) noexcept
@cython.locals(at=Py_ssize_t, kinds=cbytes)
cdef int _vr_kind_at(cbytes buf, Py_ssize_t i) noexcept
@cython.locals(at=Py_ssize_t, stop=i64)
cdef bint _in_packed(bytes packed, i64 tag) noexcept
