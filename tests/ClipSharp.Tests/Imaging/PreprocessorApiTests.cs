using ClipSharp.Imaging;

namespace ClipSharp.Tests.Imaging;

/// <summary>Public API behaviour: crop padding, resize skipping, tensors, batches and argument checks.</summary>
public class PreprocessorApiTests
{
    [Fact]
    public void CenterCropPadsWithZerosWhenTheImageIsSmaller()
    {
        // 2x2 single channel into 5x5: torchvision pads 1 before and 2 after on each axis.
        var img = DecodedImage.FromPixels(2, 2, ImageMode.L, [1, 2, 3, 4]);
        Assert.Equal((-1, -1), CenterCrop.Offsets(2, 2, 5));
        var c = CenterCrop.Apply(img, 5);
        var expected = new byte[25];
        expected[6] = 1; expected[7] = 2; expected[11] = 3; expected[12] = 4;
        Assert.Equal(expected, c.Pixels.ToArray());

        // Only one axis short: 5 wide (offset round(0.5) = 0), 3 high (pad 0 before, 1 after).
        var wide = DecodedImage.FromPixels(5, 3, ImageMode.L, Enumerable.Range(1, 15).Select(i => (byte)i).ToArray());
        var c2 = CenterCrop.Apply(wide, 4);
        Assert.Equal(new byte[] { 1, 2, 3, 4, 6, 7, 8, 9, 11, 12, 13, 14, 0, 0, 0, 0 }, c2.Pixels.ToArray());
    }

    [Fact]
    public void CenterCropRoundsHalfToEven()
    {
        Assert.Equal((0, 38), CenterCrop.Offsets(301, 224, 224)); // 38.5 -> 38
        Assert.Equal((0, 40), CenterCrop.Offsets(305, 224, 224)); // 40.5 -> 40
        Assert.Equal((0, 2), CenterCrop.Offsets(229, 224, 224));  // 2.5 -> 2
        Assert.Equal((0, 4), CenterCrop.Offsets(231, 224, 224));  // 3.5 -> 4
    }

    [Fact]
    public void ResizeIsSkippedWhenTheSizeIsUnchanged()
    {
        var img = DecodedImage.FromPixels(224, 300, ImageMode.Rgb, new byte[224 * 300 * 3]);
        Assert.Equal((224, 300), ClipImagePreprocessor.ResizedSize(224, 300, 224));
        Assert.Same(img, PillowResize.Resize(img, 224, 300));
    }

    [Fact]
    public void OnlyTheChangedAxisIsResampled()
    {
        // Height unchanged: Pillow runs only the horizontal pass, so rows must not be mixed.
        var px = new byte[10 * 4];
        for (int y = 0; y < 4; y++) for (int x = 0; x < 10; x++) px[y * 10 + x] = (byte)(y * 60);
        var r = PillowResize.ResizeBicubic(px, 10, 4, 1, 7, 4);
        for (int y = 0; y < 4; y++) for (int x = 0; x < 7; x++) Assert.Equal(y * 60, r[y * 7 + x]);
    }

    [Fact]
    public void TensorHelpersHaveTheRightShapeAndValues()
    {
        var pre = new ClipImagePreprocessor(64);
        var png = Golden.Path("preprocess", "portrait.png");
        var gray = Golden.Path("preprocess", "gray.png");
        using var one = pre.ProcessToTensor(png);
        Assert.Equal(new long[] { 3, 64, 64 }, one.shape);
        using var batch = pre.ProcessBatch([png, gray, png]);
        Assert.Equal(new long[] { 3, 3, 64, 64 }, batch.shape);
        var flat = batch.data<float>().ToArray();
        var expected = GoldenPreprocessTests.Expected;
        Assert.Equal(expected.F32("portrait.png@64"), flat[..(3 * 64 * 64)]);
        Assert.Equal(expected.F32("gray.png@64"), flat[(3 * 64 * 64)..(6 * 64 * 64)]);
        Assert.Equal(expected.F32("portrait.png@64"), flat[(6 * 64 * 64)..]);
        using var wrapped = ClipImagePreprocessor.ToTensor(pre.Process(gray), 64);
        Assert.Equal(new long[] { 3, 64, 64 }, wrapped.shape);
    }

    [Fact]
    public void BatchRethrowsTheFirstFailingFile()
    {
        var pre = new ClipImagePreprocessor(64);
        var missing = Path.Combine(Path.GetTempPath(), $"clipsharp-missing-{Guid.NewGuid():N}.png");
        Assert.ThrowsAny<IOException>(() => pre.ProcessBatch([Golden.Path("preprocess", "tiny.png"), missing]));
    }

    [Fact]
    public void ProcessFromBytesEqualsProcessFromPath()
    {
        var pre = new ClipImagePreprocessor(64);
        var path = Golden.Path("preprocess", "rgba.png");
        Assert.Equal(pre.Process(path), pre.Process(File.ReadAllBytes(path), "rgba.png"));
    }

    [Fact]
    public void DestinationTooSmallIsAnArgumentError()
    {
        var pre = new ClipImagePreprocessor(64);
        Assert.Throws<ArgumentException>(() => pre.ProcessInto(Golden.Path("preprocess", "tiny.png"), new float[10]));
    }

    [Fact]
    public void CustomMeanAndStdAreUsed()
    {
        var pre = new ClipImagePreprocessor(new ClipImagePreprocessorOptions { Size = 64, Mean = (0.5f, 0.5f, 0.5f), Std = (0.5f, 0.5f, 0.5f) });
        var img = DecodedImage.FromPixels(64, 64, ImageMode.L, Enumerable.Repeat((byte)255, 64 * 64).ToArray());
        Assert.All(pre.Process(img), v => Assert.Equal(1f, v));
    }
}
