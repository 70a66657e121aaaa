using System.Buffers.Binary;
using System.IO.Compression;

namespace ClipSharp.Data.Demo;

/// <summary>An unsigned-byte tensor read from an IDX file (the MNIST / Fashion-MNIST format).</summary>
/// <param name="Dimensions">Size of each dimension, outermost first (e.g. [10000, 28, 28]).</param>
/// <param name="Data">The values in row-major order.</param>
internal sealed record IdxArray(int[] Dimensions, byte[] Data)
{
    /// <summary>Number of items along the first dimension.</summary>
    public int Count => Dimensions[0];

    /// <summary>Number of values per item (product of the other dimensions).</summary>
    public int ItemSize => Dimensions.Skip(1).Aggregate(1, (a, b) => a * b);

    /// <summary>The values of item <paramref name="index"/>.</summary>
    public ReadOnlySpan<byte> Item(int index) => Data.AsSpan(index * ItemSize, ItemSize);
}

/// <summary>Reader for IDX files: a big-endian header (two zero bytes, a type code, the number of dimensions, the sizes), then the data.</summary>
internal static class IdxFile
{
    /// <summary>Reads a file; a name ending in <c>.gz</c> is decompressed on the fly.</summary>
    public static IdxArray Read(string path)
    {
        using var file = File.OpenRead(path);
        using Stream stream = path.EndsWith(".gz", StringComparison.OrdinalIgnoreCase) ? new GZipStream(file, CompressionMode.Decompress) : file;
        return Read(stream);
    }

    /// <summary>Reads an uncompressed IDX stream holding unsigned bytes (type code 0x08).</summary>
    public static IdxArray Read(Stream stream)
    {
        Span<byte> header = stackalloc byte[4];
        stream.ReadExactly(header);
        if (header[0] != 0 || header[1] != 0) throw new ClipSharpException("not an IDX file: the first two bytes must be zero");
        if (header[2] != 0x08) throw new ClipSharpException($"IDX type 0x{header[2]:X2} is not supported (only unsigned bytes, 0x08)");
        int rank = header[3];
        if (rank == 0) throw new ClipSharpException("IDX file has no dimensions");
        var dims = new int[rank];
        Span<byte> word = stackalloc byte[4];
        long total = 1;
        for (int i = 0; i < rank; i++)
        {
            stream.ReadExactly(word);
            dims[i] = BinaryPrimitives.ReadInt32BigEndian(word);
            if (dims[i] < 0) throw new ClipSharpException("IDX dimension is negative");
            total *= dims[i];
        }
        if (total > Array.MaxLength) throw new ClipSharpException("IDX file is too large");
        var data = new byte[total];
        try { stream.ReadExactly(data); }
        catch (EndOfStreamException) { throw new ClipSharpException($"IDX file is truncated: expected {total} data bytes"); }
        return new IdxArray(dims, data);
    }

    /// <summary>Writes an unsigned-byte IDX stream (used by tests and tools).</summary>
    public static void Write(Stream stream, IdxArray array)
    {
        stream.Write([0, 0, 0x08, (byte)array.Dimensions.Length]);
        Span<byte> word = stackalloc byte[4];
        foreach (var d in array.Dimensions)
        {
            BinaryPrimitives.WriteInt32BigEndian(word, d);
            stream.Write(word);
        }
        stream.Write(array.Data);
    }
}
