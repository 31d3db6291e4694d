import { describe, expect, it } from "vitest";
import { imageAtStep } from "../../src/components/media_panel";
import { imageLabel } from "../../src/pages/run_info";

const im = (step: number | null) => ({ step, caption: null, time: null, path: `media/${step}.png`, url: "" });

describe("imageAtStep", () => {
  it("takes the last image at or before the step", () => {
    const images = [im(100), im(200), im(300), im(null)];
    expect(imageAtStep(images, 50)).toBeUndefined();
    expect(imageAtStep(images, 100)?.step).toBe(100);
    expect(imageAtStep(images, 299)?.step).toBe(200);
    expect(imageAtStep(images, 10_000)?.step).toBe(300);
  });
});

describe("imageLabel", () => {
  it("names the key of an SDK media file, else the file name", () => {
    expect(imageLabel("media/1795696136316_bef569_prediction.png")).toBe("prediction");
    expect(imageLabel("media/photo.jpg")).toBe("photo.jpg");
  });
});
