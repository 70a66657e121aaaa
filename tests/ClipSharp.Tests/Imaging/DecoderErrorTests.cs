using ClipSharp.Imaging;

namespace ClipSharp.Tests.Imaging;

/// <summary>Corrupt, truncated, empty, unknown and oversized inputs are refused with a message naming the file.</summary>
public class DecoderErrorTests
{
    static ImageDecodeException Refused(byte[] data, string name)
    {
        var e = Assert.ThrowsAny<ImageDecodeException>(() => ImageDecoder.Decode(data, name));
        Assert.Contains(name, e.Message);
        Assert.Equal(name, e.FileName);
        return e;
    }

    [Fact]
    public void EmptyFile() => Assert.Contains("empty", Refused([], "empty.png").Message);

    [Fact]
    public void RandomBytes()
    {
        var data = new byte[4096];
        new Random(7).NextBytes(data);
        data[0] = 0x42; // not a signature we know
        Assert.Contains("unknown", Refused(data, "noise.bin").Message);
    }

    [Fact]
    public void TruncatedPng()
    {
        var full = File.ReadAllBytes(Golden.Path("preprocess", "portrait.png"));
        Refused(full[..(full.Length / 2)], "half.png");
        Refused(full[..20], "header-only.png");
        Refused(full[..60], "no-data.png");
    }

    [Fact]
    public void TruncatedJpeg()
    {
        var full = File.ReadAllBytes(Golden.Path("preprocess", "landscape.jpg"));
        Refused(full[..(full.Length / 2)], "half.jpg");
        Refused(full[..10], "stub.jpg");
    }

    [Fact]
    public void CorruptPngData()
    {
        var full = File.ReadAllBytes(Golden.Path("preprocess", "gray.png"));
        var bad = (byte[])full.Clone();
        for (int i = 100; i < bad.Length - 20; i += 7) bad[i] ^= 0x5A;
        Refused(bad, "scrambled.png");
    }

    [Fact]
    public void PreprocessorNamesThePath()
    {
        var path = Path.Combine(Path.GetTempPath(), $"clipsharp-bad-{Guid.NewGuid():N}.jpg");
        File.WriteAllBytes(path, [0xFF, 0xD8, 0xFF, 0xE0, 1, 2, 3]);
        try
        {
            var e = Assert.ThrowsAny<ImageDecodeException>(() => new ClipImagePreprocessor().Process(path));
            Assert.Contains(path, e.Message);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void PngBombIsRefusedFromTheHeader()
    {
        // Valid signature and IHDR claiming 100000 x 100000, no pixel data at all.
        var png = TestImageWriters.Png(100_000, 100_000, 8, 2, [], includeData: false);
        var e = Assert.IsType<ImageTooLargeException>(Refused(png, "bomb.png"));
        Assert.Equal(100_000, e.Width);
        Assert.Equal(ImageDecoder.DefaultMaxImagePixels, e.MaxPixels);
        Assert.Contains("decompression bomb", e.Message);
    }

    [Fact]
    public void GifAndBmpBombsAreRefusedFromTheHeader()
    {
        var gif = TestImageWriters.Gif(65535, 65535, [0, 0, 0], [0]);
        Assert.IsType<ImageTooLargeException>(Refused(gif, "bomb.gif"));
        var bmp = TestImageWriters.Bmp(1, 1, 24, [new byte[3]]);
        System.Buffers.Binary.BinaryPrimitives.WriteInt32LittleEndian(bmp.AsSpan(18), 50_000);
        System.Buffers.Binary.BinaryPrimitives.WriteInt32LittleEndian(bmp.AsSpan(22), 50_000);
        Assert.IsType<ImageTooLargeException>(Refused(bmp, "bomb.bmp"));
    }

    [Fact]
    public void LimitIsConfigurable()
    {
        var path = Golden.Path("preprocess", "landscape.jpg"); // 417 x 310 = 129,270 pixels
        Assert.Throws<ImageTooLargeException>(() => ImageDecoder.Decode(path, maxImagePixels: 129_269));
        Assert.Equal(417, ImageDecoder.Decode(path, maxImagePixels: 129_270).Width);
        var pre = new ClipImagePreprocessor(new ClipImagePreprocessorOptions { MaxImagePixels = 1000 });
        Assert.Throws<ImageTooLargeException>(() => pre.Process(path));
    }
}
