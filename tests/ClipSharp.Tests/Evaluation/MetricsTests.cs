using ClipSharp.Evaluation;

namespace ClipSharp.Tests.Evaluation;

public class MetricsTests
{
    [Fact]
    public void ClassificationTop1Top5MeanPerClassRecallAndConfusion()
    {
        // 3 classes, 4 images. Rows are scores.
        float[] scores =
        [
            0.9f, 0.1f, 0.0f,   // label 0 → predicted 0 ✓
            0.2f, 0.7f, 0.1f,   // label 0 → predicted 1 ✗
            0.1f, 0.8f, 0.1f,   // label 1 → predicted 1 ✓
            0.5f, 0.1f, 0.4f,   // label 2 → predicted 0 ✗
        ];
        var m = ClassificationMetrics.Compute(scores, [0, 0, 1, 2], ["a", "b", "c"]);
        Assert.Equal(0.5, m.Top1);
        Assert.Equal(1.0, m.Top5); // fewer than 5 classes: top-5 covers everything
        Assert.Equal((0.5 + 1.0 + 0.0) / 3, m.MeanPerClassRecall, 12);
        Assert.Equal([1, 1, 0], m.Confusion[0]);
        Assert.Equal([1, 0, 0], m.Confusion[2]);
        Assert.Equal([0, 1, 1, 0], m.Predictions);
        Assert.Equal(2, m.PerClass[0].Support);
        Assert.Equal(2, m.PerClass[1].Predicted);
    }

    [Fact]
    public void TopFiveCountsTheLabelAmongTheFiveBest()
    {
        var row = Enumerable.Range(0, 10).Select(i => (float)(10 - i)).ToArray(); // class 0 best, class 9 worst
        var m = ClassificationMetrics.Compute([.. row, .. row], [4, 5], Enumerable.Range(0, 10).Select(i => i.ToString()).ToList());
        Assert.Equal(0.5, m.Top5);
        Assert.Equal(0.0, m.Top1);
    }

    [Fact]
    public void RetrievalRecallOnAHandBuiltSimilarityMatrix()
    {
        // 3 images, 5 captions: image 0 has captions 0,1; image 1 has 2,3; image 2 has 4.
        int[] t2i = [0, 0, 1, 1, 2];
        float[] sim =
        [
            // c0   c1   c2   c3   c4
            0.9f, 0.1f, 0.5f, 0.2f, 0.3f,  // image 0: best caption c0 is rank 1
            0.8f, 0.1f, 0.2f, 0.7f, 0.0f,  // image 1: its best caption c3 (0.7) is behind c0 → rank 2
            0.6f, 0.5f, 0.4f, 0.3f, 0.1f,  // image 2: its caption c4 is last → rank 5
        ];
        var r = RetrievalMetrics.Compute(sim, 3, t2i, [1, 2, 5]);
        Assert.Equal(3, r.ImageToText.Queries);
        Assert.Equal(1 / 3.0, r.ImageToText.RecallAtK[1], 12);
        Assert.Equal(2 / 3.0, r.ImageToText.RecallAtK[2], 12);
        Assert.Equal(1.0, r.ImageToText.RecallAtK[5], 12);
        Assert.Equal(2, r.ImageToText.MedianRank);
        // Text → image, column by column: c0 → image 0 (0.9 best) rank 1; c1 → image 0 (0.1) vs 0.1, 0.5: tie counts against → rank 3;
        // c2 → image 1 (0.2) vs 0.5, 0.4 → rank 3; c3 → image 1 (0.7) best → rank 1; c4 → image 2 (0.1) vs 0.3, 0.0 → rank 2.
        Assert.Equal(5, r.TextToImage.Queries);
        Assert.Equal(2 / 5.0, r.TextToImage.RecallAtK[1], 12);
        Assert.Equal(3 / 5.0, r.TextToImage.RecallAtK[2], 12);
        Assert.Equal(2, r.TextToImage.MedianRank);
        Assert.Equal((1 + 3 + 3 + 1 + 2) / 5.0, r.TextToImage.MeanRank, 12);
    }
}
